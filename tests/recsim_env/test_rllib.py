"""The RLlib face (recsim_env/rllib.py): the adapter without a running Ray, then one short
PPO run with save and restore on the session's Ray instance."""

from __future__ import annotations

import importlib
import sys

import numpy as np
import pytest

import recsim_env
from tests.recsim_env.helpers import assert_same, random_actions

pytestmark = pytest.mark.ray

SMALL = dict(n_users=60, n_recommenders=3, n_providers=2, n_items_initial=60, n_items_max=200)
SMALL_AGENTS = ["recommender_0", "recommender_1", "recommender_2", "provider_0", "provider_1"]


@pytest.fixture(scope="module")
def rllib():
    pytest.importorskip("ray.rllib", reason="needs the optional extra: pip install "
                                            "'recsim-marl[ray]'")
    return importlib.import_module("recsim_env.rllib")


def make(rllib, **kw):
    return rllib.RecSimMultiAgentEnv({**SMALL, "max_cycles": 6, **kw})


def test_import_without_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray.rllib.env.multi_agent_env", None)
    monkeypatch.delitem(sys.modules, "recsim_env.rllib", raising=False)
    with pytest.raises(ImportError, match=r"pip install 'recsim-marl\[ray\]'"):
        importlib.import_module("recsim_env.rllib")


def test_agents_keep_order_and_own_spaces_without_a_reset(rllib):
    env = make(rllib)
    par = recsim_env.parallel_env(**SMALL)
    assert env.possible_agents == par.possible_agents == SMALL_AGENTS
    assert env.agents == [] and env.par_env.agents == []  # the constructor does not reset
    for a in env.possible_agents:
        assert env.get_observation_space(a) is env.par_env.observation_space(a)
        assert env.get_action_space(a) is env.par_env.action_space(a)
    assert env.get_action_space("recommender_0") is not env.get_action_space("recommender_1")
    assert env.get_action_space("provider_0") != env.get_action_space("recommender_0")


def test_rllib_env_checker_passes(rllib):
    from ray.rllib.utils.pre_checks.env import check_multiagent_environments

    check_multiagent_environments(make(rllib))


def episode(env, seed):
    obs, infos = env.reset(seed=seed)
    assert list(obs) == env.possible_agents
    rng = np.random.default_rng(seed)
    trace = [obs]
    while True:
        out = env.step(random_actions(env.par_env, rng))
        trace.append(out)
        if out[3]["__all__"]:
            break
    return trace


def test_seeded_episodes_are_identical_and_end_by_truncation(rllib):
    a, b, c = episode(make(rllib), 7), episode(make(rllib), 7), episode(make(rllib), 8)
    assert len(a) == 7  # reset + max_cycles steps
    assert_same(a, b)
    with pytest.raises(AssertionError):
        assert_same(a, c)
    for _, _, term, trunc, _ in a[1:-1]:
        assert not term["__all__"] and not trunc["__all__"]
    _, _, term, trunc, _ = a[-1]
    assert not term["__all__"] and trunc["__all__"]
    assert all(trunc[x] for x in SMALL_AGENTS)


def test_reset_without_seed_continues_the_generator(rllib):
    env, ref = make(rllib), recsim_env.parallel_env(**SMALL)
    env.reset(seed=3)
    ref.reset(seed=3)
    assert_same(env.reset()[0], ref.reset()[0])


def test_bad_input_is_refused_with_its_name(rllib):
    env = make(rllib)
    env.reset(seed=0)
    actions = random_actions(env.par_env, np.random.default_rng(0))
    actions["provider_0"] = 99
    with pytest.raises(ValueError, match="provider_0"):
        env.step(actions)
    with pytest.raises(ValueError, match="n_userz"):
        rllib.RecSimMultiAgentEnv({"n_userz": 5})
    with pytest.raises(ValueError, match="dict of env options"):
        rllib.RecSimMultiAgentEnv(["default"])


def test_policy_mapping_by_role(rllib):
    assert [rllib.map_by_role(a) for a in SMALL_AGENTS] == ["recommender"] * 3 + ["provider"] * 2
    assert rllib.role_of("user_12") == "user"
    assert rllib.roles_of(SMALL_AGENTS) == ["recommender", "provider"]
    for bad in ("recommender", "critic_0", "provider_x"):
        with pytest.raises(ValueError, match="<role>_<index>"):
            rllib.role_of(bad)


def test_register_and_config_defaults(rllib):
    from ray.tune.registry import ENV_CREATOR, _global_registry

    assert rllib.register() == "recsim_marl"
    env = _global_registry.get(ENV_CREATOR, "recsim_marl")({**SMALL})
    assert env.possible_agents == SMALL_AGENTS
    config = rllib.ppo_config({**SMALL}, env_name="recsim_marl", lr=1e-3)
    assert config.sample_timeout_s == rllib.SAMPLE_TIMEOUT_S > 60
    assert config.extra_python_environs_for_worker["OMP_NUM_THREADS"] == "1"
    assert set(config.policies) == {"recommender", "provider"} and config.lr == 1e-3


def weights(algo, module_id):
    """A copy of a policy's weights as numpy arrays."""
    return {k: v.detach().cpu().numpy().copy()
            for k, v in algo.get_module(module_id).state_dict().items()}


def test_ppo_trains_each_role_and_restores_from_a_checkpoint(rllib, ray_session, tmp_path):
    from ray.rllib.algorithms.algorithm import Algorithm

    rllib.register()
    config = (rllib.ppo_config({**SMALL, "max_cycles": 20}, env_name="recsim_marl",
                               train_batch_size_per_learner=40, minibatch_size=20,
                               num_epochs=1)
              .rl_module(model_config={"fcnet_hiddens": [8]}))
    algo = config.build_algo()
    try:
        before = {m: weights(algo, m) for m in ("recommender", "provider")}
        result = algo.train()
        assert result["env_runners"]["num_env_steps_sampled_lifetime"] >= 40
        assert np.isfinite(result["env_runners"]["episode_return_mean"])
        for m in ("recommender", "provider"):  # both roles' policies learned
            after = weights(algo, m)
            assert any(not np.allclose(before[m][k], after[k]) for k in after)
        algo.save(str(tmp_path / "ckpt"))
        restored = Algorithm.from_checkpoint(str(tmp_path / "ckpt"))
        try:
            for m in ("recommender", "provider"):
                assert_same(weights(algo, m), weights(restored, m))
            assert restored.train()["training_iteration"] == 2  # it continues
        finally:
            restored.stop()
    finally:
        algo.stop()
