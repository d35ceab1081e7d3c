"""Small shared helpers for the environment tests."""

from __future__ import annotations

import numpy as np


def random_slates(rng: np.random.Generator, n: int, n_candidates: int, k: int) -> np.ndarray:
    """(n, k) int64 uniformly random slates of distinct candidates (Gumbel top-k)."""
    return np.argsort(rng.random((n, n_candidates)), axis=1)[:, :k].astype(np.int64)


def random_actions(env, rng: np.random.Generator) -> dict:
    """One valid action per live agent of a parallel env (distinct slates)."""
    cfg = env.config
    out = {}
    for a in env.agents:
        if a.startswith("recommender"):
            s = random_slates(rng, 1, cfg.n_candidates, cfg.slate_size)[0]
            out[a] = int(s[0]) if cfg.slate_size == 1 else s
        else:
            out[a] = int(rng.integers(env.action_space(a).n))
    return out
