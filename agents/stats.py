"""Statistics over independent runs (seeds): the one place intervals are computed.

* :func:`mean_ci`: mean and the half-width of the two-sided Student-t confidence interval
  ``t_{(1 + confidence) / 2, n - 1} * s / sqrt(n)`` (quantiles from :mod:`scipy.stats`),
  along any axis, non-finite values dropped.
* :func:`paired_difference`: the same interval for the per-seed difference ``a - b`` of two
  methods run on the same seeds and evaluation worlds (common random numbers), which is
  far tighter than comparing two separate intervals.
* :func:`ratio_ci`: the interval of a per-seed ratio ``a / b``.
* :func:`share_of_gap`: the share ``mean(x - low) / mean(high - low)`` of a paired gap that
  a method closes, with a paired percentile-bootstrap interval over seeds.
* :func:`fmt_ci`: ``"12.3 ± 0.4"`` for tables.

Every table, figure and README number of the project goes through these functions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

__all__ = ["fmt_ci", "mean_ci", "paired_difference", "ratio_ci", "share_of_gap", "t_quantile"]

CONFIDENCE = 0.95
"""The confidence level of every interval the project reports."""


def t_quantile(p: float, df: int) -> float:
    """Quantile ``p`` of Student's t with ``df >= 1`` degrees of freedom."""
    if isinstance(df, bool) or not isinstance(df, (int, np.integer)) or df < 1:
        raise ValueError(f"df must be an int >= 1, got {df!r}")
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p!r}")
    return float(stats.t.ppf(p, int(df)))


def _mean_ci_1d(x: np.ndarray, confidence: float) -> tuple[float, float]:
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan"), float("nan")
    mean = float(x.mean())
    if x.size == 1:
        return mean, float("nan")
    sem = float(x.std(ddof=1)) / math.sqrt(x.size)
    return mean, t_quantile(0.5 + confidence / 2.0, x.size - 1) * sem


def mean_ci(values: Sequence[float] | np.ndarray, confidence: float = CONFIDENCE, *,
            axis: int | None = None) -> tuple[float, float] | tuple[np.ndarray, np.ndarray]:
    """Mean and confidence-interval half-width over independent runs (Student t).

    Non-finite values (runs where the metric is undefined) are dropped.

    Args:
        values: one value per run (seed); with ``axis``, an array whose ``axis`` is the runs.
        confidence: two-sided level in (0, 1).
        axis: ``None`` flattens ``values``; otherwise the interval of every other index.

    Returns:
        ``(mean, half_width)``: floats, or arrays over the other axes when ``axis`` is given.
        ``(nan, nan)`` without values, ``(x, nan)`` with one.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    x = np.asarray(values, dtype=np.float64)
    if axis is None:
        return _mean_ci_1d(x.reshape(-1), confidence)
    moved = np.moveaxis(x, axis, -1)
    flat = moved.reshape(-1, moved.shape[-1])
    pairs = [_mean_ci_1d(row, confidence) for row in flat]
    shape = moved.shape[:-1]
    return (np.array([p[0] for p in pairs]).reshape(shape),
            np.array([p[1] for p in pairs]).reshape(shape))


def paired_difference(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray,
                      confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Mean and interval half-width of the per-seed difference ``a - b``.

    Args:
        a, b: (n,) one value per seed, the same seeds in the same order.

    Raises:
        ValueError: the two have different lengths.
    """
    a, b = np.asarray(a, np.float64).reshape(-1), np.asarray(b, np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"paired values need the same seeds: got {a.size} and {b.size} values")
    return _mean_ci_1d(a - b, confidence)


def ratio_ci(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray,
             confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Mean and interval half-width of the per-seed ratio ``a / b`` (seeds where ``b`` is 0
    or either is undefined are dropped)."""
    a, b = np.asarray(a, np.float64).reshape(-1), np.asarray(b, np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"paired values need the same seeds: got {a.size} and {b.size} values")
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(b != 0, a / b, np.nan)
    return _mean_ci_1d(r, confidence)


def share_of_gap(x: Sequence[float] | np.ndarray, low: Sequence[float] | np.ndarray,
                 high: Sequence[float] | np.ndarray, confidence: float = CONFIDENCE, *,
                 n_resamples: int = 9999, seed: int = 0) -> tuple[float, float, float]:
    """Share of the gap from ``low`` to ``high`` that ``x`` closes, ``mean(x - low) /
    mean(high - low)``, with a paired percentile-bootstrap interval over seeds
    (:func:`scipy.stats.bootstrap`, resampling whole seeds).

    Args:
        x, low, high: (n,) one value per seed, the same seeds in the same order (e.g. a
            method, independent learners, the shared network).

    Returns:
        ``(share, lower, upper)``; NaNs when fewer than 2 seeds or the mean gap is 0.

    Raises:
        ValueError: different lengths.
    """
    x, lo, hi = (np.asarray(v, np.float64).reshape(-1) for v in (x, low, high))
    if not x.shape == lo.shape == hi.shape:
        raise ValueError(f"paired values need the same seeds: got {x.size}, {lo.size} and "
                         f"{hi.size} values")
    gap = float(np.mean(hi - lo)) if x.size else 0.0
    if x.size < 2 or gap == 0.0:
        return float("nan"), float("nan"), float("nan")
    share = float(np.mean(x - lo)) / gap

    def statistic(a: np.ndarray, b: np.ndarray, c: np.ndarray, axis: int = -1) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.mean(a - b, axis=axis) / np.mean(c - b, axis=axis)

    res = stats.bootstrap((x, lo, hi), statistic, paired=True, vectorized=True,
                          confidence_level=confidence, n_resamples=n_resamples,
                          method="percentile", rng=np.random.default_rng(seed))
    ci = res.confidence_interval
    return share, float(ci.low), float(ci.high)


def fmt_ci(mean: float, half: float, digits: int = 3) -> str:
    """``"mean ± half"`` with ``digits`` significant digits (``"n/a"`` when undefined)."""
    if not math.isfinite(mean):
        return "n/a"
    m = f"{mean:.{digits}g}"
    return m if not math.isfinite(half) else f"{m} ± {half:.2g}"
