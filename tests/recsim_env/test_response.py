"""The response functions (``recsim_env.response``) and their agreement with the world and the
oracles' ground truth."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import recsim_env
from agents.baselines import expected_engagement
from recsim_env import response
from recsim_env.config import make_config
from recsim_env.world import World
from tests.recsim_env.helpers import random_slates

_CONFIGS = {
    "engaged": make_config("default", quality_in_choice=0.5),
    "full": make_config("recsim_ie"),
    "clicks": make_config("long_term", recommender_reward="clicks", patience=3.0),
}


def _inputs(seed: int, n: int, c: int) -> dict[str, np.ndarray]:
    """Per-item inputs in the ranges the world produces (interest, satiation and mixtures keep
    affinity in [-1, 1] and satiation >= 0; quality a few standard deviations wide)."""
    rng = np.random.default_rng(seed)
    return dict(
        affinity=rng.uniform(-1, 1, (n, c)),
        quality=rng.normal(0, 2, (n, c)),
        satiation=rng.exponential(2.0, (n, c)),
        length=rng.lognormal(1.4, 0.5, (n, c)),
        budget=rng.uniform(0.01, 200.0, (n, 1)),
        clicked=rng.random((n, c)) < 0.6,
    )


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(_CONFIGS)), seed=st.integers(0, 2**31),
       n=st.integers(1, 12), c=st.integers(1, 6))
def test_response_outputs_finite_and_bounded(name, seed, n, c):
    cfg = _CONFIGS[name]
    x = _inputs(seed, n, c)
    clicked = x["clicked"]
    sat = x["satiation"] if cfg.satiation else None
    utility = response.choice_utility(x["affinity"], x["quality"], sat, cfg)
    assert utility.shape == (n, c) and np.all(np.isfinite(utility))

    watch = response.watch_time(x["length"], x["affinity"], x["quality"], x["budget"], clicked,
                                cfg)
    assert watch.shape == (n, c) and np.all(np.isfinite(watch))
    assert np.all(watch >= 0) and np.all(watch <= x["budget"]) and np.all(watch <= x["length"])
    assert np.all(watch[~clicked] == 0)

    satisfaction = response.satisfaction(utility, clicked)
    assert np.all((satisfaction >= 0) & (satisfaction < 1))
    assert np.all(satisfaction[~clicked] == 0)

    cost = response.patience_cost(satisfaction, clicked)
    assert np.all((cost >= 0) & (cost <= 1))
    assert np.all(cost[~clicked] == response.NO_CLICK_PATIENCE_COST)
    assert np.all(cost[clicked & (utility >= 0)] == 0)  # only disappointing clicks cost

    reward = response.recommender_reward(watch, clicked, cfg)
    assert reward.shape == (n, c) and np.all(np.isfinite(reward)) and np.all(reward >= 0)
    assert np.all(reward[~clicked] == 0)


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(_CONFIGS)), seed=st.integers(0, 2**31),
       s=st.integers(1, 20))
def test_session_updates(name, seed, s):
    cfg = _CONFIGS[name]
    x = _inputs(seed, s, 1)
    rng = np.random.default_rng(seed)
    clicked = x["clicked"][:, 0]
    quality, budget = x["quality"][:, 0], x["budget"][:, 0]
    watch = response.watch_time(x["length"][:, 0], x["affinity"][:, 0], quality, budget,
                                clicked, cfg)
    new_budget = response.update_budget(budget, watch, quality, clicked, cfg)
    assert new_budget.shape == (s,) and np.all(np.isfinite(new_budget))
    np.testing.assert_array_equal(new_budget[~clicked], budget[~clicked] - cfg.no_click_penalty)
    # a click spends its watch time less the share that quality gives back
    spent = (budget - new_budget)[clicked]
    # spent is a difference of budgets: its rounding is relative to the budget, not to spent
    np.testing.assert_allclose(spent, watch[clicked] * (1 - cfg.quality_bonus * quality[clicked]),
                               rtol=1e-7, atol=1e-12 * max(float(np.abs(budget).max()), 1.0))
    assert np.all((spent <= watch[clicked]) == (quality[clicked] >= 0) | (watch[clicked] == 0))

    patience = rng.uniform(0, 8, s)
    satisfaction = response.satisfaction(rng.normal(0, 2, s), clicked)
    new_patience = response.update_patience(patience, satisfaction, clicked, cfg)
    if cfg.patience is None:
        assert new_patience is patience
    else:
        assert np.all(new_patience <= patience) and np.all(new_patience >= patience - 1)
        np.testing.assert_array_equal(new_patience[~clicked], patience[~clicked] - 1)

    ended = response.session_ended(new_budget, new_patience, cfg)
    expect = new_budget <= 0
    if cfg.patience is not None:
        expect |= new_patience <= 0
    np.testing.assert_array_equal(ended, expect)


def test_choice_utility_terms_and_switches():
    aff, q, sat = np.array([0.5, -0.25]), np.array([1.0, -2.0]), np.array([0.0, 2.0])
    off = make_config("default", quality_in_choice=0.0, satiation=False)
    assert response.choice_utility(aff, q, None, off) is aff  # no term, no copy
    on = make_config("default", quality_in_choice=0.5, satiation_strength=0.25)
    np.testing.assert_array_equal(response.choice_utility(aff, q, sat, on),
                                  [0.5 + 0.5, -0.25 - 1.0 - 0.5])
    assert response.choice_utility(aff, q, sat, on) is not aff


def test_watch_time_modes():
    length, aff, q = np.array([4.0, 4.0, 10.0]), np.array([1.0, -1.0, 0.0]), np.zeros(3)
    budget, clicked = np.array([100.0, 100.0, 3.0]), np.array([True, True, True])
    full = make_config("recsim_ie")
    np.testing.assert_array_equal(response.watch_time(length, None, None, budget, clicked, full),
                                  [4.0, 4.0, 3.0])
    engaged = make_config("default", watch_sharpness=3.0)
    w = response.watch_time(length, aff, q, budget, clicked, engaged)
    np.testing.assert_allclose(w, [4 / (1 + np.exp(-3)), 4 / (1 + np.exp(3)), 3.0])


def test_patience_cost_values():
    sat = response.satisfaction(np.array([0.0, 2.0, -2.0, -40.0, 1.0]), True)
    cost = response.patience_cost(sat, np.array([True, True, True, True, False]))
    np.testing.assert_allclose(cost, [0.0, 0.0, np.tanh(1.0), 1.0, 1.0])


def test_recommender_reward_modes():
    watch, clicked = np.array([3.0, 0.0]), np.array([True, False])
    cfg = make_config("default")
    assert response.recommender_reward(watch, clicked, cfg) is watch
    clicks = make_config("default", recommender_reward="clicks")
    r = response.recommender_reward(watch, clicked, clicks)
    assert r.dtype == np.float64 and list(r) == [1.0, 0.0]


# ----------------------------------------------------------------------------- ground truth
_FORCED = {
    "default": ("default", {}),
    "recsim_ie": ("recsim_ie", {}),
    "cold_start": ("cold_start", {}),
    "long_term": ("long_term", {}),
    "clicks_onehot": ("default", dict(recommender_reward="clicks", topic_purity=1.0,
                                      quality_in_choice=0.5, patience=3.0)),
}


@pytest.mark.parametrize("name", sorted(_FORCED))
def test_expected_engagement_is_what_a_forced_click_does(name):
    """Force a click on a random slate position every step (the user-agent override): the
    world's watch time, reward, utility and satisfaction are exactly the oracles' prediction
    for that candidate, and the budget and patience move as the response functions say."""
    preset, overrides = _FORCED[name]
    cfg = recsim_env.make_config(preset, **overrides)
    world = World(cfg, n_sessions=16)
    world.reset(5)
    rng = np.random.default_rng(1)
    slots = np.arange(world.n_sessions)
    for _ in range(60):
        e = expected_engagement(world, slots)
        budget, patience = world.sessions.budget.copy(), world.sessions.patience.copy()
        slates = random_slates(rng, world.n_sessions, cfg.n_candidates, cfg.slate_size)
        pos = rng.integers(cfg.slate_size, size=world.n_sessions)
        chosen = slates[slots, pos]
        res = world.step(slates, choice_override=pos)
        np.testing.assert_array_equal(res.choice, pos)
        np.testing.assert_array_equal(res.watch_time, e.watch[slots, chosen])
        np.testing.assert_array_equal(res.reward, e.reward[slots, chosen])
        np.testing.assert_array_equal(res.user_utility, e.utility[slots, chosen])
        sat = response.satisfaction(e.utility[slots, chosen], True)
        np.testing.assert_array_equal(res.satisfaction, sat)
        clicked = np.ones(world.n_sessions, bool)
        new_budget = response.update_budget(budget, e.watch[slots, chosen],
                                            e.quality[slots, chosen], clicked, cfg)
        new_patience = response.update_patience(patience, sat, clicked, cfg)
        np.testing.assert_array_equal(res.session_ended,
                                      response.session_ended(new_budget, new_patience, cfg))
        going = ~res.session_ended  # ended slots already hold a new session
        np.testing.assert_array_equal(world.sessions.budget[going], new_budget[going])
        np.testing.assert_array_equal(world.sessions.patience[going], new_patience[going])
