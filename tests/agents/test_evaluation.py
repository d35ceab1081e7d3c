"""The one evaluation: keys and ranges, shared rows, and which sessions count."""

import numpy as np
import pytest

from agents.base import ActContext
from agents.evaluation import METRIC_KEYS, evaluate
from agents.factory import make_learner
from recsim_env import World, make_config


@pytest.mark.parametrize("preset", ["default", "recsim_ie"])
def test_evaluate_keys_and_ranges(preset):
    cfg = make_config(preset)
    oracle = make_learner("myopic_oracle", cfg, slate_mode="greedy")
    m = evaluate(oracle, cfg, seed=1, n_sessions=8, steps=30)  # every slot starts at 0
    assert set(METRIC_KEYS) <= set(m)
    # the greedy myopic oracle's slate is the top-k by the ground truth it ranks with
    assert m["precision"] == pytest.approx(1.0) and m["ndcg"] == pytest.approx(1.0)
    assert 0 < m["ctr"] < 1 and m["sessions"] > 0 and m["censored_sessions"] == 0
    if preset == "recsim_ie":  # fresh documents: no item identity
        assert np.isnan(m["coverage"]) and np.isnan(m["cold_start_ctr"])
    else:
        assert 0 < m["coverage"] <= 1 and 0 <= m["gini"] < 1 and 0 <= m["provider_gini"] < 1


def test_evaluate_shares_rows_between_learners():
    cfg = make_config("default")
    a, b = make_learner("random", cfg, seed=0), make_learner("random", cfg, seed=1)
    m = evaluate([a, b], cfg, seed=1, n_sessions=6, steps=5, learn=True)
    assert m["steps"] == 5 and 0 <= m["precision"] <= 1


def test_evaluate_counts_whole_sessions_started_in_the_window():
    """By hand: the sessions that start in steps [warmup, warmup + steps), each to its end."""
    cfg = make_config("recsim_ie", session_budget=20.0)  # short sessions: many start inside
    warmup, steps, n = 20, 30, 6
    m = evaluate(make_learner("most_popular", cfg, seed=3), cfg, seed=5, n_sessions=n,
                 steps=steps, warmup_steps=warmup, ground_truth=False)
    policy = make_learner("most_popular", cfg, seed=3)
    world = World(cfg, n_sessions=n)
    world.reset(5)
    slots = np.arange(n)
    start = np.zeros(n, np.int64)
    counted, t = [], 0
    while t < warmup + steps or ((start >= warmup) & (start < warmup + steps)).any():
        ctx = ActContext(world, slots, world.sessions.user.copy(), world.candidates.item_id.copy())
        res = world.step(policy.act(world.recommender_obs(), ctx, explore=False))
        done = res.session_ended
        keep = done & (start >= warmup) & (start < warmup + steps)
        counted += res.session_return[keep].tolist()
        t += 1
        start[done] = t
    assert m["sessions"] == len(counted) > 0
    assert m["return"] == pytest.approx(np.mean(counted), rel=1e-12)


def test_evaluate_rejects_bad_sizes():
    cfg = make_config("recsim_ie")
    with pytest.raises(ValueError, match="steps"):
        evaluate(make_learner("random", cfg), cfg, seed=0, steps=0)
