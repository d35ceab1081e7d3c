"""Action checks shared by every face (recsim_env/actions.py), spaces and rendering."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pettingzoo.test import render_test
from pettingzoo.utils import parallel_to_aec

import recsim_env
from recsim_env.actions import validate_discrete, validate_slate
from recsim_env.slates import NoRepeatSlates, NoRepeatSlatesVec
from recsim_env.vector import RecommenderVecEnv
from tests.recsim_env.helpers import assert_same, random_actions, warnings_as_errors

SMALL = dict(n_users=8, n_recommenders=2, n_providers=1, n_items_initial=40, n_items_max=80)
SPACE = r"expected an element of MultiDiscrete\(\[10 10 10\]\)"

# (value, the reason named in the error); every one of them is a malformed recommender slate.
BAD_SLATES = [
    ([3, 5, True], "contains a bool at index 2"),
    ((3, np.bool_(False), 5), "contains a bool at index 1"),
    ([[1, 2], [3]], "ragged"),
    (torch.tensor([3.0, 5.0, 1.0], requires_grad=True), "requires grad: pass tensor.detach"),
    ({"recommender_0": [0, 1, 2]}, "a dict"),
    (None, "None is only the action of an agent that is done"),
    ("012", "a str"),
    ({0, 1, 2}, "a set"),
    ([3, 5, 2.5], "dtype float64 is not an integer type"),
    (np.array([3.0, 5.0, 1.0]), "dtype float64"),
    (np.array([3, 5, np.nan]), "contains NaN"),
    ([3, 5, 2**70], "dtype object"),
    (True, "dtype bool"),
    ([3, 5], r"shape \(2,\), expected \(3,\)"),
    ([3, 5, 10], r"indices must be in \[0, 10\)"),
]
IDS = [f"{type(v).__name__}-{why.split()[0]}" for v, why in BAD_SLATES]


@pytest.mark.parametrize("value,why", BAD_SLATES, ids=IDS)
def test_every_face_refuses_a_malformed_slate_the_same_way(value, why):
    par = recsim_env.parallel_env(**SMALL)
    par.reset(seed=0)
    ref = recsim_env.parallel_env(**SMALL)
    ref.reset(seed=0)
    good = random_actions(par, np.random.default_rng(0))
    pattern = rf"^invalid action for agent 'recommender_0': .* \([^()]*{why}.*\); {SPACE}$"
    with pytest.raises(ValueError, match=pattern):
        par.step(good | {"recommender_0": value})
    assert_same(par.step(good), ref.step(good))  # the refused call changed nothing

    aec = recsim_env.env(**SMALL)
    aec.reset(seed=0)
    aec.step(0)  # provider_0 acts first
    with pytest.raises(ValueError, match=pattern):
        aec.step(value)
    assert aec.agent_selection == "recommender_0"

    view = recsim_env.single_agent_env(**SMALL)
    view.reset(seed=0)
    with pytest.raises(ValueError, match=pattern):
        view.step(value)

    venv = RecommenderVecEnv(3, **SMALL)
    venv.reset()
    batch = [[0, 1, 2], value, [3, 4, 5]]
    with pytest.raises(ValueError, match=r"^invalid action for env 1: "):
        venv.step(batch)


def test_discrete_actions_refused_by_type():
    space = recsim_env.parallel_env(**SMALL).action_space("provider_0")
    for value, why in [(True, "dtype bool"), ([True], "contains a bool"), (1.0, "dtype float64"),
                       (torch.tensor(1.0, requires_grad=True), "requires grad"),
                       ("1", "a str"), (None, "None is only"), (11, r"must be in \[0, 11\)")]:
        with pytest.raises(ValueError, match=rf"^invalid action for agent 'provider_0': .*{why}"):
            validate_discrete("provider_0", value, space)
    assert validate_discrete("provider_0", np.int8(3), space) == 3
    assert validate_discrete("provider_0", torch.tensor(4), space) == 4


def test_detached_and_integer_tensors_are_accepted():
    env = recsim_env.parallel_env(**SMALL)
    space = env.action_space("recommender_0")
    cfg = env.config
    t = torch.tensor([3.0, 5.0, 1.0], requires_grad=True)
    with pytest.raises(ValueError, match="requires grad"):
        validate_slate("recommender_0", t, space, cfg)
    np.testing.assert_array_equal(
        validate_slate("recommender_0", t.detach().long(), space, cfg), [3, 5, 1])
    np.testing.assert_array_equal(validate_slate("recommender_0", (3, 5, 1), space, cfg),
                                  [3, 5, 1])


def test_vecenv_names_the_env_of_a_bad_row():
    venv = RecommenderVecEnv(3, **SMALL)
    venv.reset()
    t = venv.world.t
    with pytest.raises(ValueError, match=r"env 2: \[0, 1\] \(shape \(2,\) differs from env 0's"):
        venv.step([[0, 1, 2], [0, 1, 3], [0, 1]])
    with pytest.raises(ValueError, match=r"env 1: \[0, 1, 2.5\] \(dtype float64"):
        venv.step([[0, 1, 2], [0, 1, 2.5], [0, 1, 2]])
    with pytest.raises(ValueError, match=r"the batch of envs: \{'a': 1\} \(a dict"):
        venv.step({"a": 1})
    assert venv.world.t == t
    venv.step([[0, 1, 2], [0, 1, 3], [4, 5, 6]])
    assert venv.world.t == t + 1


def test_no_repeat_wrappers_refuse_bools_and_grad_tensors():
    env = NoRepeatSlates(recsim_env.single_agent_env(**SMALL))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="no-repeat slate wrapper: .*contains a bool at index 1"):
        env.step([1, True, 0])
    venv = NoRepeatSlatesVec(RecommenderVecEnv(2, **SMALL))
    venv.reset()
    with pytest.raises(ValueError, match="requires grad"):
        venv.step(torch.zeros((2, 3), requires_grad=True))


# ---------------------------------------------------------------------------- spaces, render
def test_parallel_env_spaces_are_distinct_per_agent():
    env = recsim_env.parallel_env(**SMALL | {"n_providers": 2})
    for role in ("recommender", "provider"):
        a, b = f"{role}_0", f"{role}_1"
        assert env.action_space(a) is env.action_space(a)
        assert env.action_space(a) is not env.action_space(b)
        assert env.observation_space(a) is not env.observation_space(b)
    env.action_space("recommender_0").seed(0)
    env.action_space("recommender_1").seed(1)
    draws = [env.action_space(f"recommender_{i}").sample().tolist() for i in (0, 1)]
    env.action_space("recommender_1").seed(1)
    assert env.action_space("recommender_1").sample().tolist() == draws[1]


@pytest.mark.parametrize("make", [
    lambda render_mode=None: recsim_env.env(render_mode=render_mode, **SMALL),
    lambda render_mode=None: recsim_env.env(render_mode=render_mode, preset="recsim_ie",
                                            n_user_agents=1),
    lambda render_mode=None: parallel_to_aec(recsim_env.parallel_env(render_mode=render_mode,
                                                                     **SMALL)),
], ids=["aec", "aec_recsim_ie_user", "parallel"])
def test_pettingzoo_render_test_passes(make, capsys):
    with warnings_as_errors():
        render_test(make)
    assert "t=" in capsys.readouterr().out  # "human" prints the ansi line


def test_human_render_prints_and_returns_none(capsys):
    view = recsim_env.single_agent_env(render_mode="human", **SMALL)
    view.reset(seed=0)
    assert view.render() is None
    assert capsys.readouterr().out.startswith("recommender_0 t=0")
    with pytest.raises(ValueError, match=r"render_mode must be None or one of \['human', "
                                         r"'ansi'\], got 'rgb_array'"):
        recsim_env.parallel_env(render_mode="rgb_array")
