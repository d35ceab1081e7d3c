"""Whole seeded episodes are bit-for-bit what they were before the physics moved to
``recsim_env.response``.

Each case runs a small world for a few hundred steps with random slates, providers publishing
and user-agent choice overrides from a seeded generator, and hashes everything the world
produces (observations, every :class:`StepResult` array, the session state, provider
observations and the final metrics), and separately the oracles' ground truth
(:func:`agents.baselines.expected_engagement` and the oracles' ``_values``). The expected
world digests were computed from the code before the refactor (commit 5a853b4) and have not
changed since. The oracle digests were regenerated once, when :func:`expected_engagement`
started computing watch time with the world's own function: ``length / (1 + exp(-x))`` where
it had restated it as ``length * (1 / (1 + exp(-x)))``, which differed from the world's watch
time by up to 1 ulp; and the long-term oracle's refund term became ``h * (quality_bonus *
quality)`` (:func:`recsim_env.response.quality_refund`) instead of ``(h * quality_bonus) *
quality``, the same bits for the default horizon 4 (a power of two). Oracle values moved by at
most 1.4e-14, and whole oracle-driven episodes of every preset chose the same slates before and
after.

Both backends of the world (``World(..., backend="numpy")``, the plain-numpy reference the
digests were recorded from, and the compiled ``"numba"`` kernels) must give these digests.

The digests depend on the exact floating-point results of numpy's ``exp`` and friends, so they
hold for this project's pinned numpy on x86-64. If a numpy upgrade changes them, regenerate them
from a commit whose physics is known good (``python -m tests.recsim_env.test_physics_digests``
prints them) and check that nothing else changed in the same commit.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pytest

import recsim_env
from agents.base import ActContext
from agents.baselines import HorizonOracle, MyopicOracle, expected_engagement
from recsim_env.world import BACKENDS, World
from tests.recsim_env.helpers import random_slates

N_STEPS = 300
_SMALL = dict(n_users=24, n_recommenders=3, n_items_initial=40, n_items_max=80)

# name -> (preset, overrides, n_sessions); every preset, plus variants that reach the
# branches the presets leave out (one-hot catalog items, clicks reward, cascade, quality in
# the choice, full watch with patience, fresh documents with topic mixtures)
CASES: dict[str, tuple[str, dict[str, Any], int | None]] = {
    "default": ("default", dict(_SMALL, n_providers=2), None),
    "recsim_ie": ("recsim_ie", {}, 4),
    "cold_start": ("cold_start", dict(_SMALL, n_providers=2), None),
    "long_term": ("long_term", dict(_SMALL, n_providers=2), None),
    "onehot_catalog": ("default", dict(_SMALL, n_providers=1, topic_purity=1.0), None),
    "clicks_cascade": ("long_term", dict(_SMALL, recommender_reward="clicks",
                                         choice_model="cascade", quality_in_choice=0.5,
                                         watch_mode="full", patience=3.0), None),
    "fresh_mixture": ("recsim_ie", dict(topic_purity=0.7, satiation=True, patience=5.0,
                                        choice_model="mnl", watch_mode="engaged",
                                        quality_in_choice=0.3), 3),
}

# (world digest, oracle digest) per case (see the module docstring)
EXPECTED: dict[str, tuple[str, str]] = {
    "clicks_cascade": ("9665e0d5e69eda665eda5ae42f90b9f5e91797cfcc70493d13ebd4d56c3d44f7",
                       "720b82cef68a056a9393daa96881a022530dbf1d6a59544e8bddfa8f25009dec"),
    "cold_start": ("e91f54f6f8c3493a6daf7d7880270ea4e43238bd73a9140c08de1675b83527c8",
                   "00b266fa2cfb5f2fd1564c486343c244b2b2ff93edf33ada7d24511d272360db"),
    "default": ("b41f730ee66415b65f7c1b1d8b4008f0d37fec999bdc073f66eef8eb6a3dfea4",
                "72ca8e19b3326e3cfdab076617c3058ab56e632341979d98872bfa38db2cfa10"),
    "fresh_mixture": ("3d6b201c1780449f541312e628ee620c3a50e1c513c4078c0a56d7fb81de0d44",
                      "86dcacdef08a58063bf35506f3cdb414e0d1336d3688e0ec1a4d1045fb510f78"),
    "long_term": ("c313c4ce899e9ae280dc28e437bf5c411685be48bca834c3b7c2d8f20d98273f",
                  "efca80931aecc1b88743ad429679d34f33fa29b3aff270cc9d218b4dff6baae7"),
    "onehot_catalog": ("be45caab281dd4217a2ee1cb6197b332b64088ae1a6299578928756e93343ad5",
                       "eb4d8e960fadc183981676de9d47bb2fce1aa09c4892d45aa362d7e07d245aba"),
    "recsim_ie": ("d0a2d9f9de10a3daa1a1de011191043eb1901f0411cfa76837af48e13e2c8463",
                  "a5ef4bcaa54dbbe5ce59ba451fa7427b229c037d75e2e593d1f4d3be8afbe0b5"),
}


def _feed(h: Any, *arrays: Any) -> None:
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())


def episode_digests(name: str, backend: str = "numpy") -> tuple[str, str]:
    """(world, oracle) sha256 hex digests of one seeded episode of case ``name`` on the
    world's ``backend``."""
    preset, overrides, n_sessions = CASES[name]
    cfg = recsim_env.make_config(preset, **overrides)
    world = World(cfg, n_sessions=n_sessions, backend=backend)
    world.reset(11)
    rng = np.random.default_rng(2024)
    s, k, P, T = world.n_sessions, cfg.slate_size, cfg.n_providers, cfg.n_topics
    slots = np.arange(s)
    myopic = MyopicOracle(cfg, world.layout)
    planners = [HorizonOracle(cfg, world.layout, horizon=4.0, patience_weight=1.5,
                               satiation_weight=0.7),
                HorizonOracle(cfg, world.layout, horizon=3.0)]
    hw, ho = hashlib.sha256(), hashlib.sha256()
    _feed(hw, world.recommender_obs())
    for t in range(N_STEPS):
        ctx = ActContext(world, slots, world.sessions.user.copy(),
                         world.candidates.item_id.copy())
        _feed(ho, *expected_engagement(world, slots)[:5])
        for oracle in (myopic, *planners):
            _feed(ho, *oracle._values(ctx))
        slates = random_slates(rng, s, cfg.n_candidates, k)
        publish = np.where(rng.random(P) < 0.3, rng.integers(1, T + 1, size=P), 0)
        override = np.where(rng.random(s) < 0.5, -2, rng.integers(-1, k, size=s))
        res = world.step(slates, publish if P and t % 2 else None,
                         override if t % 3 else None)
        _feed(hw, *res, *world.sessions, world.recommender_obs(), world.provider_obs())
    m = world.metrics()
    hw.update(repr(sorted(m.items())).encode())
    return hw.hexdigest(), ho.hexdigest()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_episode_digests_unchanged(name: str, backend: str) -> None:
    world_hex, oracle_hex = episode_digests(name, backend)
    assert world_hex == EXPECTED[name][0], "World.step changed its numbers"
    assert oracle_hex == EXPECTED[name][1], "the oracles' ground truth changed its numbers"


if __name__ == "__main__":  # print the digests, to regenerate EXPECTED
    for case in sorted(CASES):
        print(f'    "{case}": {episode_digests(case)!r},')
