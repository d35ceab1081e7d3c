"""Statistics and recommendation metrics for benchmarks: batched, pure numpy.

Confidence intervals:

* :func:`mean_ci`: mean and the half-width of the two-sided Student-t confidence interval
  ``t_{(1 + confidence) / 2, n - 1} * s / sqrt(n)`` over independent runs (seeds).

Ranking metrics of slates against ground-truth relevance (``relevance (n, C)`` for ``C``
candidates, ``slates (n, k)`` candidate indices, best first), per row:

* the relevant set ``R`` is the top ``k`` candidates by relevance, ties at the ``k``-th value
  included (so ``|R| >= k``);
* :func:`precision_at_k` ``= |S ∩ R| / k`` and :func:`recall_at_k` ``= |S ∩ R| / |R|``, where
  ``S`` is the set of distinct candidates in the slate (a repeated candidate is shown once);
* :func:`ndcg_at_k`: graded gains = relevance, ``DCG = sum_i gain(s_i) / log2(i + 2)`` over the
  slate's positions (a repeat gains nothing), divided by the DCG of the ``k`` most relevant
  candidates in order. NaN where that ideal DCG is 0.

Catalog metrics:

* :func:`gini`: Gini coefficient of non-negative amounts (impressions per item or provider):
  0 when equal, ``(n - 1) / n`` when one holds everything.
* :func:`intra_list_diversity`: mean pairwise ``1 - cosine`` of the topic mixtures in a slate.
* :func:`coverage`: distinct items shown / items available.
* :func:`oracle_gap_closed`: ``(learned - myopic) / (long_term - myopic)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "coverage",
    "METRIC_KEYS",
    "distinct_mask",
    "evaluate_recommender",
    "gini",
    "intra_list_diversity",
    "mean_ci",
    "ndcg_at_k",
    "oracle_gap_closed",
    "precision_at_k",
    "ranking_metrics",
    "recall_at_k",
    "relevant_mask",
    "t_quantile",
]

# Two-sided 95% Student-t quantiles t_{0.975, df} for df = 1..30 (scipy-free fallback).
_T975 = (12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004,
         2.262157, 2.228139, 2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905,
         2.109816, 2.100922, 2.093024, 2.085963, 2.079614, 2.073873, 2.068658, 2.063899,
         2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272)


def t_quantile(p: float, df: int) -> float:
    """Quantile ``p`` of Student's t with ``df`` degrees of freedom.

    Uses ``scipy.stats.t`` when scipy is installed; otherwise only ``p = 0.975`` is supported
    (a table for ``df <= 30``, the normal quantile 1.96 beyond, which is within 2%).
    """
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df}")
    try:
        from scipy import stats
    except ImportError:  # pragma: no cover - scipy ships with the dev extra
        if abs(p - 0.975) > 1e-12:
            raise ValueError(f"without scipy only p=0.975 is supported, got {p}") from None
        return _T975[df - 1] if df <= len(_T975) else 1.959964
    return float(stats.t.ppf(p, df))


def mean_ci(values: Sequence[float] | np.ndarray, confidence: float = 0.95
            ) -> tuple[float, float]:
    """Mean and confidence-interval half-width over independent runs (Student t).

    Non-finite values (runs where the metric is undefined) are dropped.

    Args:
        values: (n,) one value per run (seed).
        confidence: two-sided level in (0, 1).

    Returns:
        ``(mean, half_width)``; ``(nan, nan)`` without values, ``(x, nan)`` with one.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan"), float("nan")
    mean = float(x.mean())
    if x.size == 1:
        return mean, float("nan")
    sem = float(x.std(ddof=1)) / math.sqrt(x.size)
    return mean, t_quantile(0.5 + confidence / 2.0, x.size - 1) * sem


# --------------------------------------------------------------------------- ranking
def distinct_mask(slates: np.ndarray) -> np.ndarray:
    """(n, k) bool: True where the slate position holds a candidate not already shown earlier
    in the same slate."""
    slates = np.asarray(slates)
    k = slates.shape[1]
    same = slates[:, :, None] == slates[:, None, :]  # (n, k, k)
    earlier = np.tril(np.ones((k, k), bool), -1)  # [i, j]: j < i
    return ~(same & earlier).any(axis=2)


def relevant_mask(relevance: np.ndarray, k: int) -> np.ndarray:
    """(n, C) bool: the top ``k`` candidates of each row by relevance, ties included.

    Args:
        relevance: (n, C) ground-truth relevance (NaN counts as ``-inf``).
        k: 1 <= k <= C.
    """
    rel = np.asarray(relevance, dtype=np.float64)
    n, c = rel.shape
    if not 1 <= k <= c:
        raise ValueError(f"k must be in [1, {c}], got {k}")
    rel = np.where(np.isnan(rel), -np.inf, rel)
    kth = -np.partition(-rel, k - 1, axis=1)[:, k - 1]  # k-th largest per row
    return rel >= kth[:, None]


def _hits(slates: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """(n,) number of distinct slate candidates that are relevant."""
    slates = np.asarray(slates, dtype=np.int64)
    hit = np.take_along_axis(relevant, slates, axis=1) & distinct_mask(slates)
    return hit.sum(axis=1)


def precision_at_k(slates: np.ndarray, relevance: np.ndarray) -> np.ndarray:
    """(n,) precision@k, ``k = slates.shape[1]`` (see the module docstring)."""
    k = np.asarray(slates).shape[1]
    return _hits(slates, relevant_mask(relevance, k)) / k


def recall_at_k(slates: np.ndarray, relevance: np.ndarray) -> np.ndarray:
    """(n,) recall@k: relevant candidates shown / relevant candidates (top ``k``, ties in)."""
    k = np.asarray(slates).shape[1]
    rel = relevant_mask(relevance, k)
    return _hits(slates, rel) / rel.sum(axis=1)


def ndcg_at_k(slates: np.ndarray, relevance: np.ndarray) -> np.ndarray:
    """(n,) NDCG@k with graded gains = relevance (clipped at 0); NaN where the ideal DCG is 0."""
    slates = np.asarray(slates, dtype=np.int64)
    rel = np.maximum(np.nan_to_num(np.asarray(relevance, dtype=np.float64), nan=0.0), 0.0)
    k = slates.shape[1]
    discount = 1.0 / np.log2(np.arange(k) + 2.0)  # (k,)
    gains = np.take_along_axis(rel, slates, axis=1) * distinct_mask(slates)
    dcg = gains @ discount
    ideal = -np.sort(-rel, axis=1)[:, :k]
    idcg = ideal @ discount
    return np.divide(dcg, idcg, out=np.full_like(dcg, np.nan), where=idcg > 0)


def ranking_metrics(slates: np.ndarray, relevance: np.ndarray) -> dict[str, np.ndarray]:
    """``precision``, ``recall`` and ``ndcg`` @k of every row, each (n,)."""
    return {"precision": precision_at_k(slates, relevance),
            "recall": recall_at_k(slates, relevance),
            "ndcg": ndcg_at_k(slates, relevance)}


# --------------------------------------------------------------------------- catalog
def gini(amounts: np.ndarray) -> float:
    """Gini coefficient of non-negative amounts: 0 = perfectly equal; NaN if all are zero.

    ``G = sum_i (2 i - n - 1) x_(i) / (n * sum x)`` with ``x_(1) <= ... <= x_(n)``.
    """
    x = np.sort(np.asarray(amounts, dtype=np.float64).reshape(-1))
    if x.size == 0 or np.any(x < 0):
        raise ValueError("gini needs a non-empty array of non-negative amounts")
    total = x.sum()
    if total <= 0:
        return float("nan")
    n = x.size
    i = np.arange(1, n + 1)
    return float(((2 * i - n - 1) * x).sum() / (n * total))


def intra_list_diversity(mix: np.ndarray, shown: np.ndarray | None = None) -> np.ndarray:
    """Mean pairwise ``1 - cosine`` between the topic mixtures of the items of each slate.

    Args:
        mix: (n, k, T) topic mixtures of the slate positions.
        shown: (n, k) bool positions that count (distinct items); default all.

    Returns:
        (n,) float64; NaN for slates with fewer than two shown items.
    """
    mix = np.asarray(mix, dtype=np.float64)
    n, k, _ = mix.shape
    shown = np.ones((n, k), bool) if shown is None else np.asarray(shown, bool)
    norm = np.linalg.norm(mix, axis=2, keepdims=True)
    unit = np.divide(mix, norm, out=np.zeros_like(mix), where=norm > 0)
    cos = np.einsum("nit,njt->nij", unit, unit)
    pair = shown[:, :, None] & shown[:, None, :] & ~np.eye(k, dtype=bool)[None]
    n_pairs = pair.sum(axis=(1, 2))
    total = np.where(pair, 1.0 - cos, 0.0).sum(axis=(1, 2))
    return np.divide(total, n_pairs, out=np.full(n, np.nan), where=n_pairs > 0)


def coverage(n_shown: int, n_available: int) -> float:
    """Share of the available items that were shown at least once (NaN without items)."""
    return float(n_shown / n_available) if n_available > 0 else float("nan")


def oracle_gap_closed(learned: float | np.ndarray, myopic: float | np.ndarray,
                      long_term: float | np.ndarray) -> float | np.ndarray:
    """``(learned - myopic) / (long_term - myopic)``: 0 = as good as the myopic oracle, 1 = as
    good as the long-term oracle. NaN where the oracles do not differ (``long_term <= myopic``).
    """
    learned, myopic, long_term = (np.asarray(v, dtype=np.float64) for v in
                                  (learned, myopic, long_term))
    gap = long_term - myopic
    out = np.divide(learned - myopic, gap, out=np.full(np.broadcast(learned, gap).shape, np.nan),
                    where=gap > 0)
    return float(out) if out.ndim == 0 else out


# --------------------------------------------------------------------------- evaluation loop
METRIC_KEYS = ("return", "ctr", "watch_time", "session_length", "return_rate",
               "cold_start_ctr", "cold_start_share", "time_to_first_click", "coverage",
               "diversity", "gini", "provider_gini", "precision", "recall", "ndcg")
"""What :func:`evaluate_recommender` measures (besides ``sessions`` and ``steps``)."""


class _ItemLedger:
    """Impressions per catalog item over a run. Catalog slots are reused, so an item is a
    (slot, born_at) occupant; an occupant is flushed to the ledger when its slot changes."""

    _EMPTY = np.iinfo(np.int64).min

    def __init__(self, catalog: Any) -> None:
        self._key = self._keys(catalog)
        self._imp = np.zeros(self._key.shape[0])
        self._done: list[np.ndarray] = []

    def _keys(self, catalog: Any) -> np.ndarray:
        return np.where(catalog.active, catalog.born_at, self._EMPTY)

    def sync(self, catalog: Any) -> None:
        """Flush occupants that left (retired or replaced) since the last call."""
        key = self._keys(catalog)
        changed = key != self._key
        if changed.any():
            self._done.append(self._imp[changed & (self._key != self._EMPTY)].copy())
            self._imp[changed] = 0.0
            self._key = key

    def add(self, item_ids: np.ndarray) -> None:
        """Count one impression for each id (catalog slot) in ``item_ids``."""
        self._imp += np.bincount(item_ids, minlength=self._imp.shape[0])

    def impressions(self) -> np.ndarray:
        """(items available during the run,) impressions of each."""
        live = self._imp[self._key != self._EMPTY]
        return np.concatenate(self._done + [live])


def evaluate_recommender(policy: Any, config: Any, *, seed: int, n_sessions: int = 64,
                         n_steps: int = 500, warmup_steps: int = 0, explore: bool = False,
                         learn: bool = False) -> dict[str, float]:
    """Run a recommender policy on a fresh batched world and measure every benchmark metric.

    The loop is batched over sessions (no Python loop over sessions or items). Every step it
    reads the ground-truth relevance of every candidate, the expected engagement under the
    true user state (:func:`agents.baselines.expected_engagement`: ``P(click) * reward``), to
    score the slates with precision/recall/NDCG@k.

    Args:
        policy: a learner, or a sequence of learners that share the rows (row ``i`` is served
            by ``policy[i % len(policy)]``). Every learner gets an :class:`ActContext` with the
            world (privileged learners read it).
        config: the world's :class:`recsim_env.EnvConfig`.
        seed: world seed.
        n_sessions: concurrent session slots (``World(config, n_sessions)``).
        n_steps: measured world steps.
        warmup_steps: world steps run first and not measured (item counters and online
            learners reach a steady state).
        explore: passed to ``act``.
        learn: call ``update`` every step (online learners such as the bandits).

    Returns:
        One value per key of :data:`METRIC_KEYS`, plus ``sessions`` (ended during the
        measured steps) and ``steps``. ``return`` and ``session_length`` are means over the
        sessions that ended while measuring; item, provider and cold-start metrics are NaN
        for fresh documents (``candidate_source='fresh'``), which have no identity.
    """
    from agents.base import ActContext, Transition
    from agents.baselines import expected_engagement
    from recsim_env.world import World

    learners = list(policy) if isinstance(policy, (list, tuple)) else [policy]
    world = World(config, n_sessions=n_sessions)
    world.reset(seed)
    n, k = world.n_sessions, config.slate_size
    slots = np.arange(n)
    groups = [slots[i::len(learners)] for i in range(len(learners))]
    no_trunc = np.zeros(n, bool)
    catalog_mode = world.catalog is not None
    ledger = _ItemLedger(world.catalog) if catalog_mode else None
    n_prov = world.n_providers_total
    prov_imp = np.zeros(n_prov)
    sums = dict.fromkeys(("ret", "len", "sessions", "imp", "clicks", "cold_imp", "cold_clicks",
                          "watch", "user_steps", "precision", "recall", "ndcg", "ndcg_n",
                          "diversity", "diversity_n"), 0.0)
    counters0: dict[str, float] = {}
    obs = world.recommender_obs()
    slates = np.empty((n, k), np.int64)
    for t in range(warmup_steps + n_steps):
        measuring = t >= warmup_steps
        if t == warmup_steps:
            counters0 = dict(world.counters)
        cand = world.candidates
        context = ActContext(world, slots, world.sessions.user.copy(), cand.item_id.copy())
        for learner, rows in zip(learners, groups):
            sub = context if len(learners) == 1 else ActContext(
                world, rows, context.user_ids[rows], context.item_ids[rows])
            act = learner.act(obs[rows], sub, explore=explore)
            slates[rows] = np.asarray(act, dtype=np.int64).reshape(rows.size, k)
        if measuring:
            eng = expected_engagement(world, slots)
            rank = ranking_metrics(slates, eng.p_click * eng.reward)
            sums["precision"] += float(rank["precision"].sum())
            sums["recall"] += float(rank["recall"].sum())
            ok = np.isfinite(rank["ndcg"])
            sums["ndcg"] += float(rank["ndcg"][ok].sum())
            sums["ndcg_n"] += int(ok.sum())
            shown = distinct_mask(slates)
            if k > 1:
                mix = world.candidate_topic_mix(slots)
                ild = intra_list_diversity(mix[np.arange(len(slots))[:, None], slates], shown)
                ok = np.isfinite(ild)
                sums["diversity"] += float(ild[ok].sum())
                sums["diversity_n"] += int(ok.sum())
            if catalog_mode:
                ledger.sync(world.catalog)
                ledger.add(cand.item_id[slots[:, None], slates][shown])
                prov_imp += np.bincount(cand.provider[slots[:, None], slates][shown],
                                        minlength=n_prov)[:n_prov]
        slates_now = slates.copy()
        res = world.step(slates_now)
        next_obs = world.recommender_obs()
        if learn:
            final = next_obs.copy()
            final[res.session_ended] = res.terminal_obs
            for learner, rows in zip(learners, groups):
                ctx = context if len(learners) == 1 else ActContext(
                    world, rows, context.user_ids[rows], context.item_ids[rows])
                learner.update(Transition(
                    obs=obs[rows], action=slates_now[rows], reward=res.reward[rows],
                    next_obs=final[rows], terminated=res.session_ended[rows].copy(),
                    truncated=no_trunc[rows], clicked=res.choice[rows], context=ctx))
        obs = next_obs
        if measuring:
            ended = res.session_ended
            sums["ret"] += float(res.session_return[ended].sum())
            sums["len"] += float(res.session_length[ended].sum())
            sums["sessions"] += int(ended.sum())
            sums["imp"] += int(res.impressions.sum())
            sums["clicks"] += int((res.choice >= 0).sum())
            sums["cold_imp"] += int(res.cold_impressions.sum())
            sums["cold_clicks"] += int(res.cold_clicks.sum())
            sums["watch"] += float(res.watch_time.sum())
            sums["user_steps"] += n
    c = {key: world.counters[key] - counters0.get(key, 0.0) for key in world.counters}
    nan = float("nan")

    def ratio(a: float, b: float) -> float:
        return float(a / b) if b > 0 else nan

    out = {
        "return": ratio(sums["ret"], sums["sessions"]),
        "ctr": ratio(sums["clicks"], sums["imp"]),
        "watch_time": ratio(sums["watch"], sums["user_steps"]),
        "session_length": ratio(sums["len"], sums["sessions"]),
        "return_rate": ratio(c.get("returned_in_window", 0.0), c.get("sessions", 0.0)),
        "cold_start_ctr": ratio(sums["cold_clicks"], sums["cold_imp"]) if catalog_mode else nan,
        "cold_start_share": ratio(sums["cold_imp"], sums["imp"]) if catalog_mode else nan,
        "time_to_first_click": (ratio(c.get("time_to_first_click", 0.0),
                                      c.get("first_clicks", 0.0)) if catalog_mode else nan),
        "coverage": nan, "gini": nan, "provider_gini": nan,
        "diversity": ratio(sums["diversity"], sums["diversity_n"]),
        "precision": ratio(sums["precision"], sums["user_steps"]),
        "recall": ratio(sums["recall"], sums["user_steps"]),
        "ndcg": ratio(sums["ndcg"], sums["ndcg_n"]),
        "sessions": float(sums["sessions"]),
        "steps": float(n_steps),
    }
    if catalog_mode:
        ledger.sync(world.catalog)
        imp = ledger.impressions()
        out["coverage"] = coverage(int((imp > 0).sum()), int(imp.size))
        out["gini"] = gini(imp) if imp.size else nan
        out["provider_gini"] = gini(prov_imp)
    return out
