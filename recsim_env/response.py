"""Response: what a slate and a choice do to a user and a session, as pure batched functions.

This is the one home of the world's response formulas: choice utility, watch time,
satisfaction, the budget and patience updates, the recommender's reward and the end of a
session. :meth:`recsim_env.world.World.step` calls them for the item each user chose, and the
privileged oracles and ground-truth metrics (:func:`agents.baselines.expected_engagement`) call
the same functions for hypothetical clicks on every candidate, so the world and what is said
about it cannot drift apart.

The functions take already-gathered per-item arrays (the world gathers one topic per item on
its one-hot fast path and contracts topic mixtures otherwise; both feed the same formulas) and
broadcast: the world passes ``(s, k)`` slate arrays or ``(s,)`` arrays of each session's chosen
item, the oracles ``(n, C)`` candidate arrays with ``(n, 1)`` per-session columns. Shapes below
are written ``(...)`` for "any shape that broadcasts". No function draws random numbers or
mutates its inputs.
"""

from __future__ import annotations

import numpy as np

from recsim_env.config import EnvConfig

NO_CLICK_PATIENCE_COST = 1.0
"""Patience a step without a click costs: one full unit (KuaiSim's temper)."""

NEUTRAL_SATISFACTION = 0.5
"""Satisfaction of a click with utility 0 (``sigmoid(0)``). A click costs patience in proportion
to how far its satisfaction falls below this, up to :data:`NO_CLICK_PATIENCE_COST` (a click
on an item of very negative utility is as bad as no click); a click at or above it costs
nothing."""


def choice_utility(affinity: np.ndarray, quality: np.ndarray, satiation: np.ndarray | None,
                   cfg: EnvConfig) -> np.ndarray:
    """Utility of each item to its user, what the choice model sees.

    ``utility = affinity + quality_in_choice * quality - satiation_strength * satiation``; a
    term whose switch is off (``quality_in_choice == 0``, ``satiation=False``) is skipped,
    not added as zero.

    Args:
        affinity: (...) float64 ``interest . topic_mix`` of each item.
        quality: (...) latent quality of each item.
        satiation: (...) ``satiation . topic_mix`` of each item; ``None`` (not read) when
            ``cfg.satiation`` is off.
        cfg: config (``quality_in_choice``, ``satiation``, ``satiation_strength``).

    Returns:
        (...) float64 utilities. When both terms are off this is ``affinity`` itself (no copy).
    """
    utility = affinity
    if cfg.quality_in_choice:
        utility = utility + cfg.quality_in_choice * quality
    if cfg.satiation:
        utility = utility - cfg.satiation_strength * satiation
    return utility


def watch_time(length: np.ndarray, affinity: np.ndarray | None, quality: np.ndarray,
               budget: np.ndarray, clicked: np.ndarray | bool, cfg: EnvConfig) -> np.ndarray:
    """Time the user spends on the chosen item: ``min(budget, length * frac)``, 0 without a click.

    ``frac = 1`` for ``watch_mode='full'`` and ``sigmoid(watch_sharpness * (affinity +
    quality))`` for ``'engaged'`` (users watch more of what they like and of what is good).

    Args:
        length: (...) item length.
        affinity: (...) ``interest . topic_mix`` (not satiation: boredom lowers the chance of a
            click, not the time spent once clicked). Not read (may be ``None``) for
            ``'full'``.
        quality: (...) latent quality. Not read for ``'full'``.
        budget: (...) the session's remaining time budget (``(n, 1)`` against candidates).
        clicked: (...) bool, or ``True`` for hypothetical clicks.
        cfg: config (``watch_mode``, ``watch_sharpness``).

    Returns:
        (...) float64 watch time in ``[0, budget]`` (for a positive budget).
    """
    if cfg.watch_mode == "engaged":
        # length * sigmoid(x), as one division
        length = length / (1.0 + np.exp(-cfg.watch_sharpness * (affinity + quality)))
    return np.minimum(budget, length) * clicked


def satisfaction(utility: np.ndarray, clicked: np.ndarray | bool) -> np.ndarray:
    """Satisfaction with the chosen item: ``sigmoid(utility)`` for a click, 0 otherwise.

    Args:
        utility: (...) utility of the chosen item (any value where there is no click).
        clicked: (...) bool, or ``True`` for hypothetical clicks.

    Returns:
        (...) float64 in ``[0, 1)`` (1 only where ``utility`` exceeds about 37).
    """
    return clicked / (1.0 + np.exp(-utility))


def quality_refund(quality: np.ndarray, cfg: EnvConfig) -> np.ndarray:
    """Share of a click's watch time that the item's quality gives back to the budget.

    ``quality_bonus * quality`` (RecSim: ``0.9 / 3.4``); negative quality costs extra.

    Args:
        quality: (...) latent quality of the clicked item.
        cfg: config (``quality_bonus``).

    Returns:
        (...) float64.
    """
    return cfg.quality_bonus * quality


def update_budget(budget: np.ndarray, watch: np.ndarray, quality: np.ndarray,
                  clicked: np.ndarray, cfg: EnvConfig) -> np.ndarray:
    """The session's time budget after one step.

    A click costs ``watch * (1 - quality_refund(quality))``; a step without a click costs
    ``no_click_penalty``.

    Args:
        budget: (s,) remaining budget.
        watch: (s,) watch time (see :func:`watch_time`).
        quality: (s,) latent quality of the chosen item (not read where there is no click).
        clicked: (s,) bool.
        cfg: config (``quality_bonus``, ``no_click_penalty``).

    Returns:
        (s,) float64 new budget (a new array).
    """
    return budget - np.where(clicked, watch * (1.0 - quality_refund(quality, cfg)),
                             cfg.no_click_penalty)


def patience_cost(satisfaction: np.ndarray, clicked: np.ndarray | bool) -> np.ndarray:
    """Patience one step costs: :data:`NO_CLICK_PATIENCE_COST` without a click, and
    ``max(0, 1 - satisfaction / NEUTRAL_SATISFACTION)`` (that is ``max(0, 1 - 2 *
    satisfaction)``) for a click, so only disappointing clicks (utility < 0) cost anything.

    Args:
        satisfaction: (...) in [0, 1] (see :func:`satisfaction`).
        clicked: (...) bool, or ``True`` for hypothetical clicks.

    Returns:
        (...) float64 in [0, 1].
    """
    return np.where(clicked, np.maximum(0.0, 1.0 - satisfaction / NEUTRAL_SATISFACTION),
                    NO_CLICK_PATIENCE_COST)


def update_patience(patience: np.ndarray, satisfaction: np.ndarray, clicked: np.ndarray,
                    cfg: EnvConfig) -> np.ndarray:
    """The session's patience after one step (unchanged, the same array, without patience).

    Args:
        patience: (s,) remaining patience.
        satisfaction: (s,) satisfaction of this step (0 without a click).
        clicked: (s,) bool.
        cfg: config (``patience``; ``None`` disables it).

    Returns:
        (s,) float64.
    """
    if cfg.patience is None:
        return patience
    return patience - patience_cost(satisfaction, clicked)


def recommender_reward(watch: np.ndarray, clicked: np.ndarray, cfg: EnvConfig) -> np.ndarray:
    """The recommender's reward for one step: the watch time, or 1 per click.

    Args:
        watch: (...) watch time (0 without a click).
        clicked: (...) bool of the same shape.
        cfg: config (``recommender_reward``: ``'watch_time'`` or ``'clicks'``).

    Returns:
        (...) float64; ``watch`` itself for ``'watch_time'``.
    """
    return watch if cfg.recommender_reward == "watch_time" else clicked.astype(np.float64)


def session_ended(budget: np.ndarray, patience: np.ndarray, cfg: EnvConfig) -> np.ndarray:
    """Whether each session is over: its budget or (if enabled) its patience has run out.

    Args:
        budget: (s,) remaining budget.
        patience: (s,) remaining patience (not read when ``cfg.patience`` is ``None``).
        cfg: config.

    Returns:
        (s,) bool.
    """
    ended = budget <= 0
    if cfg.patience is not None:
        ended |= patience <= 0
    return ended
