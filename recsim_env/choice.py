"""Choice models: item utilities over a slate -> probabilities of each position or no click.

Every model maps ``utility (s, k)`` (and a ``shown (s, k)`` mask: positions that hold a
distinct item) to ``probs (s, k + 1)`` whose last column is the no-click option; rows sum to 1.
Sampling is batched inverse-CDF with one uniform per session.
"""

from __future__ import annotations

import numpy as np

from recsim_env.config import EnvConfig

NO_CLICK = -1


_NARROW = 16  # rows at most this wide are reduced column by column (see _row_sum)


def _row_sum(z: np.ndarray) -> np.ndarray:
    """(s,) sums of the rows of a (s, m) array. For narrow rows a loop over the m columns
    (each a vectorised op over s) is several times faster than ``z.sum(axis=1)``, whose
    per-row reduction has a fixed cost; the additions happen in the same left-to-right order."""
    if z.shape[1] > _NARROW:
        return z.sum(axis=1)
    total = z[:, 0].copy()
    for j in range(1, z.shape[1]):
        total += z[:, j]
    return total


def _row_max(z: np.ndarray) -> np.ndarray:
    """(s,) maxima of the rows of a (s, m) array (column loop for narrow rows)."""
    if z.shape[1] > _NARROW:
        return z.max(axis=1)
    top = z[:, 0].copy()
    for j in range(1, z.shape[1]):
        np.maximum(top, z[:, j], out=top)
    return top


def choice_probabilities(utility: np.ndarray, shown: np.ndarray, cfg: EnvConfig) -> np.ndarray:
    """Probability of clicking each slate position, or nothing (last column).

    Models (``cfg.choice_model``):

    * ``mnl``: multinomial logit, ``P(i) ~ exp(u_i / T)``, no click ``~ exp(u_0 / T)`` with
      ``u_0 = no_click_utility``, ``T = choice_temperature``.
    * ``proportional``: RecSim's multinomial proportional model, ``P(i) ~ u_i - min_normalizer``
      and no click ``~ no_click_mass - min_normalizer`` (weights below zero count as zero).
    * ``cascade``: the user scans positions in order; position ``j`` is examined with
      probability ``position_bias ** j`` given the earlier ones were not clicked, and an
      examined item is clicked with probability ``sigmoid((u_i - u_0) / T)``.

    Args:
        utility: (s, k) float64 utilities of the slate items.
        shown: (s, k) bool, False for empty positions (never chosen).
        cfg: config.

    Returns:
        (s, k + 1) float64 probabilities.
    """
    s, k = utility.shape
    if cfg.choice_model == "mnl":
        z = np.empty((s, k + 1))
        z[:, :k] = np.where(shown, utility / cfg.choice_temperature, -np.inf)
        z[:, k] = cfg.no_click_utility / cfg.choice_temperature
        z = np.exp(z - _row_max(z)[:, None])
        return z / _row_sum(z)[:, None]
    if cfg.choice_model == "proportional":
        z = np.empty((s, k + 1))
        np.maximum(utility - cfg.min_normalizer, 0.0, out=z[:, :k])
        z[:, :k] *= shown
        z[:, k] = cfg.no_click_mass - cfg.min_normalizer
        return z / _row_sum(z)[:, None]
    # cascade
    k = utility.shape[1]
    attract = 1.0 / (1.0 + np.exp(-(utility - cfg.no_click_utility) / cfg.choice_temperature))
    examine = cfg.position_bias ** np.arange(k, dtype=np.float64)
    p_stop = np.where(shown, attract * examine[None, :], 0.0)
    survive = np.cumprod(1.0 - p_stop, axis=1)
    before = np.concatenate([np.ones((utility.shape[0], 1)), survive[:, :-1]], axis=1)
    return np.concatenate([before * p_stop, survive[:, -1:]], axis=1)


def sample_choice(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sample one outcome per row by inverse CDF.

    Args:
        probs: (s, k + 1) probabilities, last column = no click.
        rng: random stream; exactly ``s`` uniforms are drawn.

    Returns:
        (s,) int64: the clicked position in [0, k), or ``NO_CLICK`` (-1).
    """
    s, m = probs.shape
    u = rng.random(size=s)
    if m > _NARROW:
        idx = (u[:, None] >= np.cumsum(probs, axis=1)[:, :-1]).sum(axis=1)
    else:  # the same running sum, column by column (see _row_sum)
        cdf = probs[:, 0].copy()
        idx = (u >= cdf).astype(np.int64)
        for j in range(1, m - 1):
            cdf += probs[:, j]
            idx += u >= cdf
    return np.where(idx == m - 1, NO_CLICK, idx)
