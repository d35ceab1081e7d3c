"""Tests for the single-agent Gymnasium views (recsim_env/views.py)."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import recsim_env
from recsim_env.views import ProviderView, RecommenderView, UserView, random_slates
from tests.recsim_env.helpers import warnings_as_errors

IDS = ["recsim_env/Recommender-v0", "recsim_env/Provider-v0", "recsim_env/User-v0"]
SMALL = dict(n_users=8, n_recommenders=2, n_items_initial=60, n_items_max=200)


# ---------------------------------------------------------------------------- checkers
@pytest.mark.parametrize("env_id", IDS)
def test_registered_ids_pass_gymnasium_and_sb3_checkers(env_id):
    env = gymnasium.make(env_id)
    with warnings_as_errors():
        gym_check_env(env.unwrapped)
        sb3_check_env(env.unwrapped)
    obs, info = env.reset(seed=0)
    assert obs in env.observation_space


@pytest.mark.parametrize("kw", [
    dict(preset="recsim_ie"),
    dict(preset="default", slate_size=1, **SMALL),
    dict(agent="provider_1", n_providers=2, **SMALL),
    dict(agent="user_1", n_user_agents=2, n_providers=1, **SMALL),
    dict(agent="user_0", preset="recsim_ie", n_user_agents=1),
])
def test_views_pass_gymnasium_and_sb3_checkers(kw):
    env = recsim_env.single_agent_env(**kw)
    with warnings_as_errors():
        gym_check_env(env)
        sb3_check_env(env)


def test_registered_ids_expose_each_role():
    assert isinstance(gymnasium.make("recsim_env/Recommender-v0").unwrapped, RecommenderView)
    assert isinstance(gymnasium.make("recsim_env/Provider-v0").unwrapped, ProviderView)
    user = gymnasium.make("recsim_env/User-v0").unwrapped
    assert isinstance(user, UserView)
    assert user.action_space == gymnasium.spaces.Discrete(user.config.slate_size + 1)
    ie = gymnasium.make("recsim_env/Recommender-v0", preset="recsim_ie")
    assert ie.unwrapped.config.candidate_source == "fresh"


def test_unknown_or_missing_agents():
    with pytest.raises(ValueError, match="n_user_agents is 0"):
        recsim_env.single_agent_env("user_0")
    with pytest.raises(ValueError, match="n_recommenders is 4"):
        recsim_env.single_agent_env("recommender_4")
    with pytest.raises(ValueError, match="<role>_<index>"):
        recsim_env.single_agent_env("critic_0")
    with pytest.raises(ValueError, match="exposed agent"):
        recsim_env.single_agent_env(others={"recommender_0": lambda o: 0})
    with pytest.raises(ValueError, match="callable"):
        recsim_env.single_agent_env(others={"recommender_1": object()})


# ---------------------------------------------------------------------------- episodes
def run_episode(env, rng):
    cfg = env.config
    steps, ret = 0, 0.0
    while True:
        a = random_slates(rng, 1, cfg.n_candidates, cfg.slate_size)[0]
        obs, r, term, trunc, info = env.step(a)
        steps += 1
        ret += r
        if term or trunc:
            return obs, steps, ret, term, trunc, info


def test_recommender_episode_is_a_session_and_reset_continues_the_world():
    env = recsim_env.single_agent_env(preset="recsim_ie")
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    obs, steps, ret, term, trunc, info = run_episode(env, rng)
    assert term and not trunc
    T = env.config.n_topics
    assert obs[T] >= 1.0  # time used: the budget ran out
    assert info["episode"] == {"r": pytest.approx(ret), "l": steps}
    t = env.world.t
    assert t == steps
    with pytest.raises(ValueError, match="call reset"):
        env.step(np.array([0, 1]))
    obs2, _ = env.reset()
    assert env.world.t == t  # the world continues
    assert obs2[T] == 0.0  # a fresh session
    env.reset(seed=0)
    assert env.world.t == 0


def test_recommender_truncation_ends_the_session():
    env = recsim_env.single_agent_env(preset="recsim_ie", max_session_steps=5)
    env.reset(seed=1)
    rng = np.random.default_rng(1)
    user = env.world.sessions.user[0]
    interest = env.world.sessions.interest[0].copy()
    obs, steps, _, term, trunc, info = run_episode(env, rng)
    assert trunc and not term and steps == 5
    assert "episode" in info
    T = env.config.n_topics
    np.testing.assert_allclose(obs[T + 1], 5 / 100.0)  # session steps of the truncated one
    assert env.world.sessions.steps[0] == 0  # the next session already started
    obs2, _ = env.reset()
    assert obs2[T + 1] == 0.0
    assert env.world.sessions.user[0] == user  # recsim_ie: one user, fresh interest
    assert not np.allclose(env.world.sessions.interest[0], interest)


def test_reset_mid_episode_ends_the_session():
    env = recsim_env.single_agent_env(**SMALL)
    env.reset(seed=2)
    env.step(np.array([0, 1, 2]))
    sessions = env.world.metrics()["sessions"]
    env.reset()
    assert env.world.metrics()["sessions"] >= sessions + 1
    assert env.world.sessions.steps[0] == 0


def trace(env, seed, n_steps):
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    out = [obs]
    for _ in range(n_steps):
        if isinstance(env, RecommenderView):
            cfg = env.config
            a = random_slates(rng, 1, cfg.n_candidates, cfg.slate_size)[0]
        else:
            a = int(rng.integers(env.action_space.n))
        obs, r, term, trunc, info = env.step(a)
        out += [obs, r, term, trunc, sorted(info)]
        if term or trunc:
            out.append(env.reset()[0])
    return out


@pytest.mark.parametrize("kw", [
    dict(preset="recsim_ie"),
    dict(**SMALL, n_providers=1, max_session_steps=7),
    dict(agent="provider_0", n_providers=2, max_episode_steps=9, **SMALL),
    dict(agent="user_0", n_user_agents=2, **SMALL),
])
def test_same_seed_same_episodes(kw):
    a = trace(recsim_env.single_agent_env(**kw), 3, 60)
    b = trace(recsim_env.single_agent_env(**kw), 3, 60)
    c = trace(recsim_env.single_agent_env(**kw), 4, 60)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(a, c))


def test_provider_view_window_and_publishing():
    env = recsim_env.single_agent_env("provider_0", n_providers=1, max_episode_steps=4, **SMALL)
    env.reset(seed=0)
    size = env.world.metrics()["catalog_size"]
    out = [env.step(3) for _ in range(4)]
    assert [o[3] for o in out] == [False, False, False, True]
    assert not any(o[2] for o in out)
    assert all(o[4]["published"] for o in out)
    assert out[-1][4]["episode"]["l"] == 4
    assert env.world.metrics()["catalog_size"] > 0 and size > 0
    env.reset()
    assert env.world.t == 4


def test_user_view_episode_is_the_users_session():
    env = recsim_env.single_agent_env("user_0", n_user_agents=1, n_users=2, n_recommenders=2,
                                      n_items_initial=60, n_items_max=200)
    obs, info = env.reset(seed=0)
    k = env.config.slate_size
    assert env.world.sessions.user[env._slot] == 0
    assert info["action_mask"][k] == 1
    rng = np.random.default_rng(0)
    n, total = 0, 0.0
    while True:
        mask = info["action_mask"]
        a = int(rng.choice(np.flatnonzero(mask)))
        obs, r, term, trunc, info = env.step(a)
        n += 1
        total += r
        if a == k:
            assert info["choice"] == -1 and r == 0.0
        else:
            assert info["choice"] == a and r == info["utility"]
        if term or trunc:
            break
    assert term
    assert info["episode"] == {"r": pytest.approx(total), "l": n}
    T = env.config.n_topics
    assert (obs[2 * T:].reshape(k, -1)[:, -1] == 1).all()  # no slate after the session
    env.reset()
    assert env.world.sessions.user[env._slot] == 0


# ---------------------------------------------------------------------------- others
def test_others_drive_the_other_agents():
    calls = {"rec": 0, "prov": 0, "user": 0}

    def rec_policy(obs):
        calls["rec"] += 1
        assert obs.shape == (env.layout.size,)
        return np.array([0, 1, 2])

    def prov_policy(obs):
        calls["prov"] += 1
        assert obs.shape == (env.world.provider_obs_dim,)
        return 1

    def user_policy(obs):
        calls["user"] += 1
        return 0  # always click the first position

    env = recsim_env.single_agent_env(
        **{**SMALL, "n_users": 4}, n_providers=1, n_user_agents=2,
        others={"recommender_1": rec_policy, "provider_0": prov_policy, "user_1": user_policy})
    env.reset(seed=0)
    for _ in range(20):
        env.step(np.array([3, 4, 5]))
    assert calls["rec"] == 20 and calls["prov"] == 20 and calls["user"] > 0


@pytest.mark.parametrize("bad", [np.array([0, 0.5, 1]), np.array([0, 1, 10])])
def test_bad_policy_output_names_the_other_agent(bad):
    env = recsim_env.single_agent_env(**SMALL, others={"recommender_1": lambda obs: bad})
    env.reset(seed=0)
    with pytest.raises(ValueError, match="invalid action for agent 'recommender_1'"):
        env.step(np.array([0, 1, 2]))


# ---------------------------------------------------------------------------- bad actions
BAD = [np.full(3, 1.5), np.array([np.nan] * 3), np.full(3, 10), np.full(3, -1),
       np.ones(4, np.int64), np.ones(3, bool), "a"]


@pytest.mark.parametrize("bad", BAD, ids=range(len(BAD)))
def test_bad_recommender_action_same_error_as_parallel(bad):
    env = recsim_env.single_agent_env(**SMALL)
    par = recsim_env.parallel_env(**SMALL)
    env.reset(seed=0)
    par.reset(seed=0)
    t = env.world.t
    with pytest.raises(ValueError) as err:
        env.step(bad)
    acts = {"recommender_0": bad, "recommender_1": np.array([0, 1, 2])}
    with pytest.raises(ValueError) as par_err:
        par.step(acts)
    assert str(err.value) == str(par_err.value)
    assert env.world.t == t


@pytest.mark.parametrize("agent", ["provider_0", "user_0"])
@pytest.mark.parametrize("bad", [1.0, np.nan, -1, 99, True, [1, 2]])
def test_bad_provider_and_user_actions_same_error_as_parallel(agent, bad):
    env = recsim_env.single_agent_env(agent, **SMALL, n_providers=1, n_user_agents=1)
    env.reset(seed=0)
    par = recsim_env.parallel_env(**SMALL, n_providers=1)
    par.reset(seed=0)
    with pytest.raises(ValueError) as err:
        env.step(bad)
    acts = {a: par.action_space(a).sample() for a in par.agents} | {"provider_0": bad}
    with pytest.raises(ValueError) as par_err:
        par.step(acts)
    want = str(par_err.value).replace("provider_0", agent)
    if agent == "user_0":  # Discrete(slate_size + 1) instead of Discrete(n_topics + 1)
        want = want.replace(str(par.action_space("provider_0")), str(env.action_space))
        want = want.replace(f"[0, {env.config.n_topics + 1})", f"[0, {env.config.slate_size + 1})")
    assert str(err.value) == want


# ---------------------------------------------------------------------------- SB3
def train_params(algo, env_fn, seed, steps, **kw):
    torch.set_num_threads(1)
    model = algo("MlpPolicy", env_fn(), seed=seed, device="cpu", **kw)
    model.learn(steps)
    return [p.detach().clone() for p in model.policy.parameters()]


SB3_CASES = [
    (PPO, dict(n_steps=256, batch_size=64, n_epochs=2), dict(preset="recsim_ie")),
    (DQN, dict(learning_starts=200, buffer_size=2000, train_freq=4, target_update_interval=200),
     dict(preset="recsim_ie", slate_size=1)),
]


def check_sb3_deterministic(algo, kw, cfg, steps):
    def env_fn():
        return recsim_env.single_agent_env(**cfg)

    a = train_params(algo, env_fn, 0, steps, **kw)
    b = train_params(algo, env_fn, 0, steps, **kw)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("algo,kw,cfg", SB3_CASES, ids=["PPO", "DQN"])
def test_sb3_trains_on_a_view_deterministically(algo, kw, cfg):
    check_sb3_deterministic(algo, kw, cfg, 1024)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("algo,kw,cfg", SB3_CASES, ids=["PPO", "DQN"])
def test_sb3_trains_on_a_view_deterministically_long(algo, kw, cfg):
    check_sb3_deterministic(algo, kw, cfg, 4096)
