import numpy as np
import pytest
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test
from pettingzoo.utils import parallel_to_aec

import recsim_env
from tests.recsim_env.helpers import assert_same, random_actions, warnings_as_errors

SMALL = dict(n_users=60, n_recommenders=3, n_providers=2, n_items_initial=60, n_items_max=200)


def make_small(**kw):
    return recsim_env.parallel_env(**{**SMALL, **kw})


def test_parallel_api():
    with warnings_as_errors():
        parallel_api_test(make_small(), num_cycles=200)


def test_aec_api_through_conversion():
    with warnings_as_errors():
        api_test(parallel_to_aec(make_small()), num_cycles=100)


def test_parallel_seed_test():
    with warnings_as_errors():
        parallel_seed_test(lambda: make_small(), num_cycles=100)


def run_episode(env, seed, n_steps):
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    trace = [obs]
    for _ in range(n_steps):
        out = env.step(random_actions(env, rng))
        trace.append(out)
        if not env.agents:
            break
    return trace


@pytest.mark.parametrize("preset", ["default", "recsim_ie", "cold_start"])
def test_whole_seeded_episodes_identical(preset):
    kw = SMALL if preset != "recsim_ie" else dict(n_recommenders=2, n_users=4)
    a = run_episode(recsim_env.parallel_env(preset=preset, max_cycles=150, **kw), 7, 200)
    b = run_episode(recsim_env.parallel_env(preset=preset, max_cycles=150, **kw), 7, 200)
    assert len(a) == 151
    assert_same(a, b)
    c = run_episode(recsim_env.parallel_env(preset=preset, max_cycles=150, **kw), 8, 200)
    with pytest.raises(AssertionError):
        assert_same(a, c)


def test_reset_without_seed_continues_generator():
    env = make_small()
    o1, _ = env.reset(seed=3)
    o2, _ = env.reset()
    env2 = make_small()
    p1, _ = env2.reset(seed=3)
    p2, _ = env2.reset()
    assert_same(o1, p1)
    assert_same(o2, p2)
    assert not np.array_equal(o1["recommender_0"], o2["recommender_0"])


def test_spaces_and_layout():
    env = make_small(slate_size=1)
    assert env.possible_agents == ["recommender_0", "recommender_1", "recommender_2",
                                   "provider_0", "provider_1"]
    assert env.action_space("recommender_0").n == env.config.n_candidates
    assert env.action_space("provider_0").n == env.config.n_topics + 1
    assert env.observation_space("recommender_1") is env.observation_space("recommender_1")
    obs, _ = env.reset(seed=0)
    user, cand = env.layout.split(obs["recommender_0"])
    assert cand.shape == (env.config.n_candidates, env.layout.item_dim)
    assert user.shape == (env.layout.user_dim,)
    with pytest.raises(ValueError, match="unknown agent 'user_0'"):
        env.observation_space("user_0")


def test_infos_session_and_metrics():
    env = recsim_env.parallel_env(preset="recsim_ie", n_recommenders=1, n_users=1, max_cycles=600)
    env.reset(seed=1)
    rng = np.random.default_rng(1)
    sessions, total, steps = [], 0.0, 0
    while env.agents:
        _, rew, _, _, infos = env.step(random_actions(env, rng))
        total += rew["recommender_0"]
        steps += 1
        info = infos["recommender_0"]
        assert {"clicks", "watch_time", "cold_impressions", "cold_clicks"} <= info.keys()
        if "session" in info:
            sessions.append(info["session"])
            assert info["session"]["return"] == pytest.approx(total)
            assert info["session"]["length"] == steps
            total, steps = 0.0, 0
    assert len(sessions) >= 3
    m = env.metrics()
    assert m["sessions"] == len(sessions)
    assert m["session_length"] == pytest.approx(np.mean([s["length"] for s in sessions]))
    assert 0 < m["ctr"] < 1 and m["catalog_size"] == 0
    for key in ("cold_start_ctr", "watch_time", "return_rate", "catalog_size"):
        assert key in m


# ----------------------------------------------------------------------------- bad input
def _good(env, rng):
    return random_actions(env, rng)


BAD_CASES = [
    ("out of range", lambda a: a | {"recommender_0": np.array([0, 99, 1])}, "indices must be in"),
    ("negative", lambda a: a | {"recommender_1": np.array([-1, 2, 3])}, "indices must be in"),
    ("wrong shape", lambda a: a | {"recommender_0": np.array([0, 1])}, r"shape \(2,\)"),
    ("float dtype", lambda a: a | {"recommender_0": np.array([0.0, 1.0, 2.0])}, "dtype float64"),
    ("nan", lambda a: a | {"recommender_2": np.array([np.nan, 1, 2])}, "NaN"),
    ("bool", lambda a: a | {"provider_0": True}, "dtype bool"),
    ("provider range", lambda a: a | {"provider_1": 11}, r"must be in \[0, 11\)"),
    ("missing", lambda a: {k: v for k, v in a.items() if k != "provider_1"}, "missing actions.*provider_1"),
    ("unknown", lambda a: a | {"recommender_9": np.array([0, 1, 2])}, "unknown or inactive.*recommender_9"),
    ("not a dict", lambda a: list(a.values()), "must be a dict"),
]


@pytest.mark.parametrize("name,mutate,match", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_action_rejected_and_state_unchanged(name, mutate, match):
    env, ref = make_small(), make_small()
    env.reset(seed=5)
    ref.reset(seed=5)
    rng = np.random.default_rng(0)
    actions = _good(env, rng)
    with pytest.raises(ValueError, match=match) as err:
        env.step(mutate(dict(actions)))
    if name not in ("missing", "unknown", "not a dict"):
        assert "expected an element of" in str(err.value)
    # the failed call changed nothing: the next valid step equals a run that never saw it
    assert_same(env.step(actions), ref.step(actions))
    assert_same(env.metrics(), ref.metrics())


def test_step_after_end_and_repeated_slate_items():
    env = make_small(max_cycles=2)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    env.step(random_actions(env, rng))
    env.step(random_actions(env, rng))
    with pytest.raises(ValueError, match="finished episode"):
        env.step(random_actions(env, rng))
    # a repeated candidate is shown once: the repeat is an empty position
    env = make_small()
    env.reset(seed=0)
    acts = random_actions(env, rng) | {"recommender_0": np.array([4, 4, 4])}
    _, _, _, _, infos = env.step(acts)
    assert infos["recommender_0"]["impressions"] == 1
