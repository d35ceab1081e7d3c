"""Tests for the native SB3 VecEnv (recsim_env/vector.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

import recsim_env
from recsim_env.vector import RecommenderVecEnv
from recsim_env.views import random_slates

SMALL = dict(n_users=40, n_recommenders=4, n_items_initial=60, n_items_max=200)


def actions_for(venv, rng):
    cfg = venv.get_attr("config", indices=0)[0] if hasattr(venv, "get_attr") else venv.config
    a = random_slates(rng, venv.num_envs, cfg.n_candidates, cfg.slate_size)
    return a[:, 0] if cfg.slate_size == 1 else a


def test_vecenv_shapes_and_spaces():
    venv = RecommenderVecEnv(6, **SMALL)
    venv.seed(0)
    obs = venv.reset()
    assert obs.shape == (6, venv.observation_space.shape[0]) and obs.dtype == np.float32
    obs, rew, done, infos = venv.step(actions_for(venv, np.random.default_rng(0)))
    assert obs.shape == (6, venv.observation_space.shape[0]) and obs.dtype == np.float32
    assert rew.shape == (6,) and rew.dtype == np.float32
    assert done.shape == (6,) and done.dtype == bool
    assert len(infos) == 6 and all(i["TimeLimit.truncated"] is False for i in infos)
    assert venv.world.n_sessions == 6
    assert venv.world.n_users == venv.config.cohort_size * 6


def test_infos_done_envs_own_dicts_others_share_a_read_only_one():
    venv = RecommenderVecEnv(16, max_session_steps=3, **SMALL)
    venv.seed(0)
    venv.reset()
    rng = np.random.default_rng(0)
    seen_done = seen_running = False
    for _ in range(6):
        _, _, done, infos = venv.step(actions_for(venv, rng))
        for i, info in enumerate(infos):
            if done[i]:
                seen_done = True
                assert isinstance(info, dict) and "terminal_observation" in info
                assert sum(info is other for other in infos) == 1  # its own dict
                info["mine"] = 1  # a done env's info may be written
            else:
                seen_running = True
                assert dict(info) == {"TimeLimit.truncated": False}
                with pytest.raises(TypeError):
                    info["mine"] = 1  # shared: read-only, never silently shared writes
    assert seen_done and seen_running


def test_autoreset_terminal_observation_and_time_limit():
    venv = RecommenderVecEnv(16, preset="recsim_ie", max_session_steps=90)
    venv.seed(1)
    obs = venv.reset()
    T = venv.config.n_topics
    rng = np.random.default_rng(1)
    length = np.zeros(16, int)
    seen = {"terminated": 0, "truncated": 0}
    for _ in range(400):
        prev = obs
        obs, rew, done, infos = venv.step(actions_for(venv, rng))
        length += 1
        for i in range(16):
            info = infos[i]
            if not done[i]:
                assert "terminal_observation" not in info and not info["TimeLimit.truncated"]
                np.testing.assert_allclose(obs[i, T + 1], length[i] / 100.0, rtol=1e-6)
                continue
            term_obs = info["terminal_observation"]
            assert term_obs.shape == prev[i].shape
            assert info["episode"]["l"] == length[i]
            np.testing.assert_allclose(term_obs[T + 1], length[i] / 100.0, rtol=1e-6)
            if info["TimeLimit.truncated"]:
                seen["truncated"] += 1
                assert length[i] == 90 and term_obs[T] < 1.0
            else:
                seen["terminated"] += 1
                assert length[i] <= 90 and term_obs[T] >= 1.0  # the budget ran out
            assert obs[i, T] == 0.0 and obs[i, T + 1] == 0.0  # the next session's first obs
            length[i] = 0
    assert seen["terminated"] > 10 and seen["truncated"] > 10


def test_episode_statistics_match_vecmonitor():
    raw = RecommenderVecEnv(8, preset="recsim_ie", max_session_steps=50)
    mon = VecMonitor(RecommenderVecEnv(8, preset="recsim_ie", max_session_steps=50))
    raw.seed(3)
    mon.seed(3)
    raw.reset()
    mon.reset()
    r1, r2 = np.random.default_rng(0), np.random.default_rng(0)
    n = 0
    for _ in range(200):
        _, rew1, d1, i1 = raw.step(actions_for(raw, r1))
        _, rew2, d2, i2 = mon.step(actions_for(raw, r2))
        np.testing.assert_array_equal(rew1, rew2)
        np.testing.assert_array_equal(d1, d2)
        for i in np.flatnonzero(d1):
            n += 1
            assert i1[i]["episode"]["l"] == i2[i]["episode"]["l"]
            assert i1[i]["episode"]["r"] == pytest.approx(float(i2[i]["episode"]["r"]), rel=1e-5)
    assert n > 5


def trajectory(seed, n_steps=50, **kw):
    venv = RecommenderVecEnv(8, **{**SMALL, **kw})
    seeds = venv.seed(seed)
    assert seeds == [seed + i for i in range(8)]
    out = [venv.reset()]
    rng = np.random.default_rng(0)
    for _ in range(n_steps):
        obs, rew, done, infos = venv.step(actions_for(venv, rng))
        out += [obs, rew, done]
    return out


def test_same_seed_same_trajectory():
    a, b, c = trajectory(5), trajectory(5), trajectory(6)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(a, c))


def test_reset_without_seed_restarts_sessions_and_continues_the_world():
    venv = RecommenderVecEnv(4, **SMALL)
    venv.seed(0)
    venv.reset()
    rng = np.random.default_rng(0)
    for _ in range(5):
        venv.step(actions_for(venv, rng))
    sessions = venv.metrics()["sessions"]
    venv.reset()
    assert venv.world.t == 5
    assert (venv.world.sessions.steps == 0).all()
    assert venv.metrics()["sessions"] == sessions + 4
    venv.seed(0)
    venv.reset()
    assert venv.world.t == 0


def test_get_attr_set_attr_env_method():
    venv = RecommenderVecEnv(4, **SMALL, max_session_steps=77)
    venv.seed(0)
    venv.reset()
    assert venv.get_attr("max_session_steps") == [77] * 4
    assert venv.get_attr("max_session_steps", indices=[1, 3]) == [77, 77]
    assert venv.get_attr("render_mode") == [None] * 4
    assert venv.has_attr("config") and not venv.has_attr("no_such_attribute")
    venv.set_attr("max_session_steps", 3)
    assert venv.max_session_steps == 3
    with pytest.raises(ValueError, match="subset"):
        venv.set_attr("max_session_steps", 3, indices=[0])
    m = venv.env_method("metrics", indices=[0, 2])
    assert len(m) == 2 and m[0] == m[1] and "ctr" in m[0]
    assert venv.env_is_wrapped(VecMonitor) == [False] * 4
    rng = np.random.default_rng(0)
    for _ in range(3):
        _, _, done, infos = venv.step(actions_for(venv, rng))
    assert done.all() and all(i["TimeLimit.truncated"] for i in infos)


def test_providers_in_config_publish_at_the_builtin_rate():
    venv = RecommenderVecEnv(4, **SMALL, n_providers=2, arrival_rate=20.0)
    venv.seed(0)
    venv.reset()
    rng = np.random.default_rng(0)
    for _ in range(20):
        venv.step(actions_for(venv, rng))
    own = venv.world.catalog.provider >= venv.config.n_background_providers
    assert (own & venv.world.catalog.active).sum() > 0


# ---------------------------------------------------------------------------- bad actions
def batch(k=3, n=4):
    return np.tile(np.arange(k), (n, 1))


BAD = {
    "float": (lambda: batch().astype(float) + 0.5, 0),
    "nan": (lambda: np.where(np.arange(4)[:, None] == 2, np.nan, batch().astype(float)), 2),
    "range": (lambda: np.where(np.arange(4)[:, None] == 3, 10, batch()), 3),
    "negative": (lambda: np.where(np.arange(4)[:, None] == 1, -1, batch()), 1),
    "row_shape": (lambda: np.tile(np.arange(4), (4, 1)), 0),
    "bool": (lambda: batch() > 0, 0),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_actions_same_error_as_parallel_plus_env_index(case):
    make, i = BAD[case]
    bad = make()
    venv = RecommenderVecEnv(4, **SMALL)
    venv.seed(0)
    obs = venv.reset()
    t = venv.world.t
    with pytest.raises(ValueError) as err:
        venv.step(bad)
    par = recsim_env.parallel_env(**SMALL)
    par.reset(seed=0)
    acts = {a: np.arange(3) for a in par.agents} | {"recommender_0": bad[i]}
    with pytest.raises(ValueError) as par_err:
        par.step(acts)
    assert str(err.value) == str(par_err.value).replace("agent 'recommender_0'", f"env {i}")
    # nothing changed: the next valid step goes ahead from the same state
    assert venv.world.t == t
    np.testing.assert_array_equal(venv.world.recommender_obs(), obs)
    venv.step(batch())
    assert venv.world.t == t + 1


def test_bad_batch_size_and_slate_of_one():
    venv = RecommenderVecEnv(4, **SMALL)
    venv.seed(0)
    venv.reset()
    with pytest.raises(ValueError, match=r"expected a batch of 4 actions .* got shape \(3, 3\)"):
        venv.step(batch(n=3))
    one = RecommenderVecEnv(4, **SMALL, slate_size=1)
    one.seed(0)
    one.reset()
    one.step(np.arange(4))
    one.step(np.arange(4)[:, None])
    with pytest.raises(ValueError, match=r"invalid action for env 2: 10 \(indices must be in"):
        one.step(np.array([0, 1, 10, 2]))


def test_constructor_validation():
    with pytest.raises(ValueError, match="num_envs"):
        RecommenderVecEnv(0)
    with pytest.raises(ValueError, match="max_session_steps"):
        RecommenderVecEnv(2, max_session_steps=0)
    with pytest.raises(ValueError, match="unknown config field"):
        RecommenderVecEnv(2, no_such_field=1)
    assert recsim_env.vector.RecommenderVecEnv is RecommenderVecEnv


# ---------------------------------------------------------------------------- SB3
def train(algo, seed, steps, **kw):
    torch.set_num_threads(1)
    cfg = kw.pop("cfg")
    model = algo("MlpPolicy", RecommenderVecEnv(8, **cfg), seed=seed, device="cpu", **kw)
    model.learn(steps)
    return model


SB3_CASES = {
    "PPO": (PPO, dict(n_steps=128, batch_size=256, n_epochs=2, cfg=dict(preset="recsim_ie"))),
    "DQN": (DQN, dict(learning_starts=256, buffer_size=4000, train_freq=4,
                      target_update_interval=256, cfg=dict(preset="recsim_ie", slate_size=1))),
}


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("name", list(SB3_CASES))
def test_sb3_trains_on_the_vecenv_deterministically(name):
    algo, kw = SB3_CASES[name]
    a = train(algo, 0, 3072, **dict(kw))
    b = train(algo, 0, 3072, **dict(kw))
    assert len(a.ep_info_buffer) > 0  # rollout/ep_rew_mean is logged without a monitor
    for x, y in zip(a.policy.parameters(), b.policy.parameters()):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
    c = train(algo, 1, 1024, **dict(kw))
    assert c.num_timesteps >= 1024


# ---------------------------------------------------------------------------- statistics
def sessions(venv, n_steps, seed):
    """(lengths, returns) of the sessions that end in ``n_steps`` random steps."""
    cfg = venv.get_attr("config", indices=0)[0]
    venv.seed(seed)
    venv.reset()
    rng = np.random.default_rng(seed + 1000)
    lengths, returns = [], []
    for _ in range(n_steps):
        a = random_slates(rng, venv.num_envs, cfg.n_candidates, cfg.slate_size)
        _, _, done, infos = venv.step(a[:, 0] if cfg.slate_size == 1 else a)
        for i in np.flatnonzero(done):
            lengths.append(infos[i]["episode"]["l"])
            returns.append(infos[i]["episode"]["r"])
    return np.array(lengths), np.array(returns)


def compare_with_dummy(kw, n_vec, n_views, n_steps, min_sessions):
    vec = RecommenderVecEnv(n_vec, **kw)
    dummy = DummyVecEnv([lambda: recsim_env.single_agent_env(**kw) for _ in range(n_views)])
    l1, r1 = sessions(vec, n_steps, 0)
    l2, r2 = sessions(dummy, n_steps, 1)
    assert min(len(l1), len(l2)) >= min_sessions
    # same dynamics in distribution: two-sample KS tests (seeded, so deterministic)
    assert stats.ks_2samp(l1, l2).pvalue > 0.01, (l1.mean(), l2.mean())
    assert stats.ks_2samp(r1, r2).pvalue > 0.01, (r1.mean(), r2.mean())
    return l1, r1


@pytest.mark.parametrize("kw,n_steps", [
    (dict(preset="recsim_ie"), 800),
    (dict(preset="recsim_ie", max_session_steps=70), 560),
    (dict(preset="default"), 300),
], ids=["recsim_ie", "recsim_ie-truncated", "default"])
def test_vecenv_matches_dummyvecenv_of_views(kw, n_steps):
    lengths, returns = compare_with_dummy(kw, 64, 8, n_steps, 60)
    if kw.get("preset") == "recsim_ie" and "max_session_steps" not in kw:
        # RecSim's interest_evolution under random slates: 83.7 steps, return 154.1
        assert 75 < lengths.mean() < 92 and 140 < returns.mean() < 170


@pytest.mark.slow
@pytest.mark.parametrize("preset,n_steps", [("recsim_ie", 1500), ("default", 800)])
def test_vecenv_matches_dummyvecenv_of_views_long(preset, n_steps):
    compare_with_dummy(dict(preset=preset), 64, 16, n_steps, 250)
