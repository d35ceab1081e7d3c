"""Tests for the turn-based AEC env with user agents (recsim_env/aec.py)."""

from __future__ import annotations

import sys
import time
import types

import numpy as np
import pytest
from pettingzoo.test import api_test, max_cycles_test, performance_benchmark, seed_test

import recsim_env
from recsim_env.aec import user_choice
from recsim_env.items import repeated_mask
from tests.recsim_env.helpers import random_slates, warnings_as_errors

# Cohorts of two users per recommender: user agents 0..3 are in session about half the time.
SMALL = dict(n_users=8, n_recommenders=4, n_providers=2, n_user_agents=4, n_items_initial=60,
             n_items_max=200)


def make_small(**kw):
    return recsim_env.env(**{**SMALL, **kw})


def random_action(env, agent, rng):
    """A valid random action for ``agent`` (distinct slates; clickable positions for users)."""
    cfg = env.config
    if agent.startswith("recommender"):
        s = random_slates(rng, 1, cfg.n_candidates, cfg.slate_size)[0]
        return int(s[0]) if cfg.slate_size == 1 else s
    return int(rng.integers(env.action_space(agent).n))


def test_aec_api_test_with_user_agents_and_providers():
    env = make_small(max_cycles=300)
    with warnings_as_errors():
        api_test(env, num_cycles=300)


def test_aec_api_test_recsim_ie_user_agent():
    with warnings_as_errors():
        api_test(recsim_env.env(preset="recsim_ie", n_user_agents=1, max_cycles=200),
                 num_cycles=200)


def test_aec_seed_test():
    with warnings_as_errors():
        seed_test(lambda: make_small(max_cycles=100), num_cycles=100)


def test_module_passes_max_cycles_test():
    max_cycles_test(recsim_env)


def test_max_cycles_counts_with_user_agents():
    env = make_small(max_cycles=5)
    env.reset(seed=0)
    counts = dict.fromkeys(env.possible_agents, 0)
    for a in env.agent_iter():
        counts[a] += 1
        _, _, term, trunc, _ = env.last()
        env.step(None if term or trunc else env.action_space(a).sample())
    for a in env.recommenders + env.providers:
        assert counts[a] == 6  # 5 turns + the final truncated one
    for a in env.user_agents:
        assert 1 <= counts[a] <= 6  # skipped while out of session, always the final turn


def test_performance_benchmark_runs(monkeypatch, capsys):
    # performance_benchmark runs for 5 s of wall time; make its clock run 20x faster
    fake = types.SimpleNamespace(time=lambda: 20.0 * time.time())
    # (pettingzoo.test re-exports the function under the module's name)
    monkeypatch.setattr(sys.modules["pettingzoo.test.performance_benchmark"], "time", fake)
    performance_benchmark(make_small(max_cycles=50))
    assert "turns per second" in capsys.readouterr().out


def play(env, seed, n_turns=None):
    """Play with seeded random actions; returns the (agent, last()) trace."""
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    trace = []
    for a in env.agent_iter(n_turns or 2**63):
        obs, rew, term, trunc, info = env.last()
        trace.append((a, obs, rew, term, trunc, info))
        env.step(None if term or trunc else random_action(env, a, rng))
    return trace


def test_aec_whole_seeded_episodes_identical():
    t1 = play(make_small(max_cycles=60), seed=3)
    t2 = play(make_small(max_cycles=60), seed=3)
    assert len(t1) == len(t2)
    for x, y in zip(t1, t2):
        assert x[0] == y[0]
        np.testing.assert_array_equal(x[1], y[1])
        assert x[2:5] == y[2:5]
        assert x[5].keys() == y[5].keys()
    t3 = play(make_small(max_cycles=60), seed=4)
    assert any(not np.array_equal(x[1], y[1]) for x, y in zip(t1, t3))


def test_turn_order_and_skipping():
    env = make_small(max_cycles=40)
    env.reset(seed=1)
    rng = np.random.default_rng(1)
    n_user_turns = 0
    for _ in range(40):
        world = env.world
        in_session = set(world.sessions.user.tolist())
        expected = env.providers + env.recommenders + [
            f"user_{k}" for k in range(4) if k in in_session]
        seen = []
        for _ in expected:
            a = env.agent_selection
            seen.append(a)
            _, _, term, trunc, _ = env.last()
            assert not (term or trunc)
            env.step(random_action(env, a, rng))
        assert seen == expected
        n_user_turns += len(expected) - 6
        # skipped user agents stay live agents, with nothing to report
        assert set(env.agents) == set(env.possible_agents)
    assert 0 < n_user_turns < 40 * 4


def to_cycle_user_turn(env, k, rng, max_cycles=200):
    """Step (random actions) until it is ``user_k``'s turn; returns the slot it is served in."""
    for _ in range(max_cycles * len(env.possible_agents)):
        a = env.agent_selection
        if a == f"user_{k}":
            return int(np.flatnonzero(env.world.sessions.user == k)[0])
        env.step(random_action(env, a, rng))
    raise AssertionError(f"user_{k} never got a turn")


def test_user_observation_shows_the_slate_and_own_state():
    env = make_small()
    env.reset(seed=2)
    rng = np.random.default_rng(2)
    slot = to_cycle_user_turn(env, 1, rng)
    world, cfg, lay = env.world, env.config, env.layout
    slate = env._slates[slot].copy()
    obs = env.observe("user_1")
    assert env.observation_space("user_1").contains(obs)
    T, k, d = cfg.n_topics, cfg.slate_size, lay.item_dim
    np.testing.assert_allclose(obs[:T], world.sessions.interest[slot], rtol=1e-6)
    np.testing.assert_allclose(obs[T:2 * T], world.sessions.satiation[slot], rtol=1e-6)
    pos = obs[2 * T:].reshape(k, d + 1)
    cand = lay.split(world.recommender_obs())[1][slot]
    empty = repeated_mask(slate[None])[0]
    for j in range(k):
        assert pos[j, d] == float(empty[j])
        if not empty[j]:
            np.testing.assert_array_equal(pos[j, :d], cand[slate[j]])
    mask = env.infos["user_1"]["action_mask"]
    np.testing.assert_array_equal(mask, np.r_[~empty, True].astype(np.int8))


@pytest.mark.parametrize("choice", [0, 1, "none"])
def test_user_choice_drives_the_click_and_reward(choice):
    env = make_small()
    env.reset(seed=5)
    rng = np.random.default_rng(5)
    slot = to_cycle_user_turn(env, 0, rng)
    # the recommender of that slot showed a slate of distinct items (random_action)
    k = env.config.slate_size
    action = k if choice == "none" else choice
    rec = f"recommender_{slot}"
    t0 = env.world.t
    env.step(action)
    while env.world.t == t0:  # the other user agents of this cycle, then the world step
        env.step(random_action(env, env.agent_selection, rng))
    # infos of the user and of its recommender describe the same click
    info = env.infos["user_0"]
    rinfo = env.infos[rec]
    if choice == "none":
        assert info["choice"] == -1 and rinfo["clicks"] == 0
        assert env.rewards["user_0"] == 0.0
    else:
        assert info["choice"] == choice and rinfo["clicks"] == 1
        assert env.rewards["user_0"] == info["utility"]
        assert info["utility"] != 0.0


def test_click_on_empty_position_is_no_click():
    slate = np.array([4, 4, 2])
    assert user_choice(1, slate) == -1
    assert user_choice(0, slate) == 0
    assert user_choice(2, slate) == 2
    assert user_choice(3, slate) == -1


def test_user_rewards_accumulate_until_next_turn():
    env = make_small(max_cycles=80)
    env.reset(seed=7)
    rng = np.random.default_rng(7)
    pending = dict.fromkeys(env.possible_agents, 0.0)
    for a in env.agent_iter():
        _, rew, term, trunc, _ = env.last()
        assert rew == pytest.approx(pending[a])
        pending[a] = 0.0
        env.step(None if term or trunc else random_action(env, a, rng))
        for b, r in env.rewards.items():
            pending[b] += r


def test_without_user_agents_matches_parallel_env():
    kw = dict(SMALL, n_user_agents=0)
    aec, par = recsim_env.env(**kw, max_cycles=30), recsim_env.parallel_env(**kw, max_cycles=30)
    aec.reset(seed=11)
    par_obs, _ = par.reset(seed=11)
    assert aec.metadata["is_parallelizable"]
    rng = np.random.default_rng(0)
    for _ in range(30):
        actions = {a: random_action(aec, a, rng) for a in aec.possible_agents}
        for a in aec.possible_agents:
            assert aec.agent_selection == a
            np.testing.assert_array_equal(aec.observe(a), par_obs[a])
            aec.step(actions[a])
        par_obs, rewards, *_ = par.step(actions)
        for a in aec.possible_agents:
            assert aec.rewards[a] == rewards[a]


def bad_actions(cfg):
    k = cfg.slate_size
    return [
        np.full(k, 1.5),
        np.array([np.nan] * k),
        np.full(k, cfg.n_candidates),
        np.full(k, -1),
        np.ones(k + 1, np.int64),
        np.ones(k, bool),
        "a",
    ]


@pytest.mark.parametrize("i", range(7))
def test_bad_recommender_actions_same_errors_as_parallel(i):
    env, par = make_small(), recsim_env.parallel_env(**SMALL)
    env.reset(seed=0)
    par.reset(seed=0)
    bad = bad_actions(env.config)[i]
    while env.agent_selection != "recommender_0":
        env.step(0)
    with pytest.raises(ValueError) as aec_err:
        env.step(bad)
    acts = {a: par.action_space(a).sample() for a in par.agents} | {"recommender_0": bad}
    with pytest.raises(ValueError) as par_err:
        par.step(acts)
    assert str(aec_err.value) == str(par_err.value)
    assert env.agent_selection == "recommender_0"  # nothing changed


@pytest.mark.parametrize("bad", [1.0, np.nan, -1, 99, True, [1, 2]])
def test_bad_provider_and_user_actions(bad):
    env, par = make_small(), recsim_env.parallel_env(**SMALL)
    env.reset(seed=0)
    par.reset(seed=0)
    with pytest.raises(ValueError) as aec_err:
        env.step(bad)  # provider_0 acts first
    acts = {a: par.action_space(a).sample() for a in par.agents} | {"provider_0": bad}
    with pytest.raises(ValueError) as par_err:
        par.step(acts)
    assert str(aec_err.value) == str(par_err.value)
    rng = np.random.default_rng(0)
    to_cycle_user_turn(env, 0, rng)
    with pytest.raises(ValueError, match=r"invalid action for agent 'user_0'"):
        env.step(bad)


def test_dead_step_needs_none_and_step_after_end_fails():
    env = make_small(max_cycles=1)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    while not env.truncations[env.agent_selection]:
        env.step(random_action(env, env.agent_selection, rng))
    with pytest.raises(ValueError, match="only valid action is None"):
        env.step(0)
    while env.agents:
        env.step(None)
    with pytest.raises(ValueError, match="call reset"):
        env.step(None)


def test_env_constructor_validation():
    with pytest.raises(ValueError, match="max_cycles"):
        recsim_env.env(max_cycles=0)
    with pytest.raises(ValueError, match="n_user_agents"):
        recsim_env.env(n_users=4, n_recommenders=4, n_user_agents=5)
    with pytest.raises(ValueError, match="unknown agent"):
        make_small().observation_space("user_9")
    env = recsim_env.env(render_mode="ansi", max_cycles=3)
    env.reset(seed=0)
    assert env.render().startswith("t=0")
