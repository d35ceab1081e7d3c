"""The no-repeat slate encoding and its wrappers (recsim_env/slates.py)."""

from __future__ import annotations

from itertools import permutations

import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env
from stable_baselines3 import PPO

from recsim_env import make_config
from recsim_env.slates import (
    NoRepeatSlates,
    NoRepeatSlatesVec,
    decode_no_repeat,
    encode_no_repeat,
    no_repeat_space,
)
from recsim_env.vector import RecommenderVecEnv
from recsim_env.views import RecommenderView
from tests.recsim_env.helpers import warnings_as_errors

SMALL = dict(n_users=40, n_recommenders=4, n_items_initial=60, n_items_max=200)


def test_codes_are_a_bijection_onto_slates_without_repeats():
    space = no_repeat_space(spaces.MultiDiscrete([5, 5, 5]))
    assert space.nvec.tolist() == [5, 4, 3]
    codes = np.array([[a, b, c] for a in range(5) for b in range(4) for c in range(3)])
    slates = decode_no_repeat(codes, 5)
    assert {tuple(s) for s in slates} == set(permutations(range(5), 3))  # all 60, once each
    np.testing.assert_array_equal(encode_no_repeat(slates, 5), codes)
    # position j picks among the candidates still free, in index order
    np.testing.assert_array_equal(decode_no_repeat(np.array([[2, 2, 0]]), 5), [[2, 3, 0]])


@pytest.mark.parametrize("space", [spaces.MultiDiscrete([5]), spaces.Discrete(5),
                                   spaces.MultiDiscrete([5, 4]), spaces.MultiDiscrete([2, 2, 2])])
def test_space_must_be_a_slate_space(space):
    with pytest.raises(ValueError, match=r"MultiDiscrete\(\[c\] \* k\) with 1 < k <= c"):
        no_repeat_space(space)


def test_bad_codes_are_rejected():
    with pytest.raises(ValueError, match=r"row 0, position 1 is outside \[0, 4\)"):
        decode_no_repeat(np.array([[0, 4]]), 5)
    with pytest.raises(ValueError, match="outside"):
        decode_no_repeat(np.array([[-1, 0]]), 5)
    with pytest.raises(ValueError, match="repeats"):
        encode_no_repeat(np.array([[1, 1]]), 5)
    with pytest.raises(ValueError, match="whole numbers"):
        decode_no_repeat(np.array([[0.5, 1.0]]), 5)
    with pytest.raises(ValueError, match="shape"):
        decode_no_repeat(np.array([0, 1]), 5)


def test_view_wrapper_passes_check_env_and_shows_distinct_items():
    env = NoRepeatSlates(RecommenderView(config=make_config("default", **SMALL)))
    assert env.action_space.nvec.tolist() == [10, 9, 8]
    with warnings_as_errors():
        check_env(env, skip_render_check=True)
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([9, 8, 7]))  # the last three candidates
    assert info["impressions"] == 3
    with pytest.raises(ValueError, match="outside"):
        env.step(np.array([0, 9, 0]))
    with pytest.raises(ValueError, match="shape"):
        env.step(np.array([0, 1]))


def test_vec_wrapper_decodes_every_env_and_trains_ppo():
    venv = NoRepeatSlatesVec(RecommenderVecEnv(8, **SMALL))
    assert venv.action_space.nvec.tolist() == [10, 9, 8]
    venv.seed(0)
    venv.reset()
    rng = np.random.default_rng(0)
    codes = np.stack([rng.integers(0, n, size=8) for n in (10, 9, 8)], axis=1)
    seen = []
    orig = venv.venv.step_async
    venv.venv.step_async = lambda a: (seen.append(a.copy()), orig(a))[1]
    venv.step(codes)
    np.testing.assert_array_equal(seen[0], decode_no_repeat(codes, 10))
    with pytest.raises(ValueError, match=r"expected \(8, 3\)"):
        venv.step(codes[:4])
    bad = codes.copy()
    bad[5, 2] = 8
    with pytest.raises(ValueError, match="row 5, position 2"):
        venv.step(bad)
    model = PPO("MlpPolicy", NoRepeatSlatesVec(RecommenderVecEnv(8, **SMALL)), n_steps=16,
                batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.learn(64)
    assert model.action_space.nvec.tolist() == [10, 9, 8]
