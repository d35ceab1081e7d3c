"""Evaluate learners on held-out worlds, through the one rollout loop.

:func:`evaluate` runs a set of learners on fresh worlds (one per seed) with
:class:`agents.rollout.Rollout` and measures every benchmark metric. The Runner's periodic
evaluation, the benchmark suite, ``recsim-marl evaluate``, the demo and every study call it.

Which sessions count (the one definition of *session return* in the project): every session
that **starts** in the evaluation window (world steps ``warmup_steps .. warmup_steps + steps -
1``; all slots start one at step 0), each followed to its end. Counting the sessions that *end*
inside a fixed window instead drops the long sessions still running at its end, so the mean
return would depend on the window's length (on ``default`` with 8 slots, random's read 66.4
over a 100-step window and 76.4 over 200; counted this way it reads 70.0 and 72.1). The world
keeps running after the window until every counted session has ended; sessions still running
``max(4 * steps, 1000)`` world steps after the window are dropped and reported as
``censored_sessions``.

Per-step metrics (CTR, watch time, cold start, ranking against the ground truth, catalog
coverage and concentration) are measured over the window's steps only; ``return_rate`` and
``time_to_first_click`` from the world's counters over the window.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from agents.metrics import (
    ItemLedger,
    coverage,
    distinct_mask,
    gini,
    intra_list_diversity,
    ranking_metrics,
)
from agents.rollout import EVAL_STREAM, Assignment, Rollout, assign, assign_rows
from agents.stats import mean_ci
from recsim_env.config import EnvConfig
from recsim_env.content import ContentEncoder
from recsim_env.world import World

__all__ = ["METRIC_KEYS", "evaluate", "evaluate_seeds", "summarize"]

METRIC_KEYS = ("return", "ctr", "watch_time", "session_length", "return_rate",
               "cold_start_ctr", "cold_start_share", "time_to_first_click", "coverage",
               "diversity", "gini", "provider_gini", "precision", "recall", "ndcg")
"""What :func:`evaluate` measures (besides ``sessions``, ``censored_sessions`` and ``steps``)."""

CENSOR_FACTOR, CENSOR_MIN = 4, 1000
"""Counted sessions still running ``max(4 * steps, 1000)`` steps after the window are
dropped (``censored_sessions``)."""


def _assignments(policy: Any, config: EnvConfig, n_sessions: int) -> list[Assignment]:
    if isinstance(policy, dict):
        return assign(policy, config, n_sessions)
    if isinstance(policy, list) and policy and isinstance(policy[0], Assignment):
        return policy
    return assign_rows(policy, n_sessions)


def evaluate(policy: Any, config: EnvConfig, *, seed: int, n_sessions: int = 64,
             steps: int = 300, warmup_steps: int = 0, explore: bool = False,
             learn: bool = False, max_session_steps: int | None = None,
             ground_truth: bool = True, encoder: ContentEncoder | None = None) -> dict[str, float]:
    """Run learners on ``World(config, n_sessions)`` reset to ``seed`` and measure them.

    Args:
        policy: a learner; a sequence of learners sharing the session slots (slot ``i`` is
            served by ``policy[i % len(policy)]``); an agent-id/role -> learner mapping (as
            the Runner takes); or a list of :class:`agents.rollout.Assignment`.
        config: the world's config.
        seed: world seed (the built-in behaviour draws from ``[seed, 2]``).
        n_sessions: concurrent session slots.
        steps: world steps of the evaluation window (>= 1).
        warmup_steps: world steps run first; nothing is counted (item counters and online
            learners reach a steady state).
        explore: passed to ``act``.
        learn: call ``update`` every step (online learners such as the bandits).
        max_session_steps: truncate sessions at this length (``None``: never).
        ground_truth: measure precision/recall/NDCG@k against the simulator's ground truth
            (the expected engagement of every candidate under the true user state) and
            intra-list diversity; costs about as much as the step itself.
        encoder: a content encoder shared with other worlds (``World(..., encoder=)``);
            ``None``: the world builds its own from ``config``.

    Returns:
        One value per key of :data:`METRIC_KEYS` (NaN where undefined: catalog metrics for
        fresh documents, ranking metrics without ``ground_truth``), plus ``sessions``
        (counted), ``censored_sessions``, ``steps`` and the world's own metrics over every
        step run under ``env/<key>``.
    """
    for name, v, lo in (("steps", steps, 1), ("warmup_steps", warmup_steps, 0),
                        ("n_sessions", n_sessions, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
    world = World(config, n_sessions=n_sessions, encoder=encoder)
    world.reset(seed)
    rollout = Rollout(world, _assignments(policy, config, world.n_sessions),
                      np.random.default_rng([seed, EVAL_STREAM]),
                      max_session_steps=max_session_steps)
    n, k = world.n_sessions, config.slate_size
    slots = np.arange(n)
    start, stop = warmup_steps, warmup_steps + steps
    limit = stop + max(CENSOR_FACTOR * steps, CENSOR_MIN)
    catalog_mode = world.catalog is not None
    ledger = ItemLedger(world.catalog) if catalog_mode else None
    n_prov = world.n_providers_total
    prov_imp = np.zeros(n_prov)
    sums = dict.fromkeys(("imp", "clicks", "cold_imp", "cold_clicks", "watch", "user_steps",
                          "precision", "recall", "ndcg", "ndcg_n", "diversity",
                          "diversity_n"), 0.0)
    rets: list[np.ndarray] = []
    lens: list[np.ndarray] = []
    counters0: dict[str, float] = {}
    counters1: dict[str, float] = {}
    censored = 0
    impressions: np.ndarray | None = None
    t = 0
    while True:
        in_window = start <= t < stop
        if t == start:
            counters0 = dict(world.counters)
        if t == stop:
            counters1 = dict(world.counters)
            if ledger is not None:  # items that arrive after the window were never available
                ledger.sync(world.catalog)
                impressions = ledger.impressions()
        running = (rollout.started_at >= start) & (rollout.started_at < stop)
        if t >= stop and not running.any():
            break
        if t >= limit:
            censored = int(running.sum())
            break
        before = _pre_step(world, slots, ground_truth) if in_window else None
        out = rollout.step(explore=explore, learn=learn)
        if in_window:
            res, slates = out.result, out.slates
            if before is not None:
                eng_value, mix, cand = before
                shown = distinct_mask(slates)
                if ground_truth:
                    rank = ranking_metrics(slates, eng_value)
                    sums["precision"] += float(rank["precision"].sum())
                    sums["recall"] += float(rank["recall"].sum())
                    ok = np.isfinite(rank["ndcg"])
                    sums["ndcg"] += float(rank["ndcg"][ok].sum())
                    sums["ndcg_n"] += int(ok.sum())
                    if k > 1:
                        ild = intra_list_diversity(mix[slots[:, None], slates], shown)
                        ok = np.isfinite(ild)
                        sums["diversity"] += float(ild[ok].sum())
                        sums["diversity_n"] += int(ok.sum())
                if cand is not None:
                    ledger.sync(cand.active_before)
                    ledger.add(cand.item_id[slots[:, None], slates][shown])
                    prov_imp += np.bincount(cand.provider[slots[:, None], slates][shown],
                                            minlength=n_prov)[:n_prov]
            sums["imp"] += int(res.impressions.sum())
            sums["clicks"] += int((res.choice >= 0).sum())
            sums["cold_imp"] += int(res.cold_impressions.sum())
            sums["cold_clicks"] += int(res.cold_clicks.sum())
            sums["watch"] += float(res.watch_time.sum())
            sums["user_steps"] += n
        counted = out.ended & (out.started_at >= start) & (out.started_at < stop)
        if counted.any():
            rets.append(out.episode_return[counted])
            lens.append(out.episode_length[counted])
        t += 1
    if not counters1:
        counters1 = dict(world.counters)
    return _summarise(sums, rets, lens, counters0, counters1, censored, steps, catalog_mode,
                      impressions, prov_imp, ground_truth, world)


class _Snapshot:
    """The candidates' catalog identity before a step (the step replaces them)."""

    __slots__ = ("active_before", "item_id", "provider")

    def __init__(self, world: World) -> None:
        cand = world.candidates
        self.item_id = cand.item_id.copy()
        self.provider = cand.provider.copy()
        self.active_before = _CatalogView(world.catalog.active.copy(),
                                          world.catalog.born_at.copy())


class _CatalogView:
    __slots__ = ("active", "born_at")

    def __init__(self, active: np.ndarray, born_at: np.ndarray) -> None:
        self.active, self.born_at = active, born_at


def _pre_step(world: World, slots: np.ndarray, ground_truth: bool
              ) -> tuple[np.ndarray | None, np.ndarray | None, _Snapshot | None] | None:
    """What the metrics need from the state the slates are chosen in (the step replaces
    the candidates): ground-truth values, topic mixtures and the catalog identities."""
    if not ground_truth and world.catalog is None:
        return None
    from agents.baselines import expected_engagement  # the oracles' module reads the world

    value = mix = None
    if ground_truth:
        eng = expected_engagement(world, slots)
        value = eng.p_click * eng.reward
        if world.config.slate_size > 1:
            mix = world.candidate_topic_mix(slots)
    snap = _Snapshot(world) if world.catalog is not None else None
    return value, mix, snap


def _summarise(sums: dict[str, float], rets: list[np.ndarray], lens: list[np.ndarray],
               c0: dict[str, float], c1: dict[str, float], censored: int, steps: int,
               catalog_mode: bool, impressions: np.ndarray | None, prov_imp: np.ndarray,
               ground_truth: bool, world: World) -> dict[str, float]:
    nan = float("nan")

    def ratio(a: float, b: float) -> float:
        return float(a / b) if b > 0 else nan

    r = np.concatenate(rets) if rets else np.zeros(0)
    ln = np.concatenate(lens) if lens else np.zeros(0)
    c = {key: c1.get(key, 0.0) - c0.get(key, 0.0) for key in c1}
    out = {
        "return": float(r.mean()) if r.size else nan,
        "ctr": ratio(sums["clicks"], sums["imp"]),
        "watch_time": ratio(sums["watch"], sums["user_steps"]),
        "session_length": float(ln.mean()) if ln.size else nan,
        "return_rate": ratio(c.get("returned_in_window", 0.0), c.get("sessions", 0.0)),
        "cold_start_ctr": ratio(sums["cold_clicks"], sums["cold_imp"]) if catalog_mode else nan,
        "cold_start_share": ratio(sums["cold_imp"], sums["imp"]) if catalog_mode else nan,
        "time_to_first_click": (ratio(c.get("time_to_first_click", 0.0),
                                      c.get("first_clicks", 0.0)) if catalog_mode else nan),
        "coverage": nan, "gini": nan, "provider_gini": nan,
        "diversity": ratio(sums["diversity"], sums["diversity_n"]) if ground_truth else nan,
        "precision": ratio(sums["precision"], sums["user_steps"]) if ground_truth else nan,
        "recall": ratio(sums["recall"], sums["user_steps"]) if ground_truth else nan,
        "ndcg": ratio(sums["ndcg"], sums["ndcg_n"]) if ground_truth else nan,
        "sessions": float(r.size),
        "censored_sessions": float(censored),
        "steps": float(steps),
    }
    if catalog_mode and impressions is not None:
        imp = impressions
        out["coverage"] = coverage(int((imp > 0).sum()), int(imp.size))
        out["gini"] = gini(imp) if imp.size else nan
        out["provider_gini"] = gini(prov_imp) if prov_imp.sum() > 0 else nan
    for key, v in world.metrics().items():
        out["env/" + key] = float(v)
    return out


def evaluate_seeds(policy: Any, config: EnvConfig, seeds: Sequence[int], **kwargs: Any
                   ) -> list[dict[str, float]]:
    """:func:`evaluate` on each seed (the same policy object, so online learners carry on)."""
    return [evaluate(policy, config, seed=int(s), **kwargs) for s in seeds]


def summarize(per_seed: Sequence[dict[str, float]], keys: Sequence[str] = METRIC_KEYS
              ) -> dict[str, tuple[float, float]]:
    """Mean and 95% interval half-width over seeds of every key (:func:`agents.stats.mean_ci`)."""
    return {key: mean_ci([m[key] for m in per_seed]) for key in keys}
