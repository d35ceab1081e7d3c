"""SB3's DQN on recommender slates larger than one (``agents.sb3.TopKSB3DQN``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents.base import ActContext
from agents.checkpoint import load_checkpoint, save_checkpoint
from agents.factory import make_learner
from agents.sb3 import SB3Learner, TopKSB3DQN
from recsim_env import World, make_config
from tests.agents.loops import SessionLoop

CFG = make_config("default", n_users=32, n_items_initial=60, n_items_max=200)


def _learner(seed: int = 0) -> TopKSB3DQN:
    return make_learner("sb3_dqn", CFG, n_rows=4, seed=seed, total_steps=400,
                        learning_starts=8, batch_size=8, buffer_size=200)


def test_factory_gives_top_k_adapter_on_slates_and_plain_dqn_on_one():
    assert isinstance(_learner(), TopKSB3DQN)
    one = make_config("default", n_users=32, slate_size=1)
    assert isinstance(make_learner("sb3_dqn", one, n_rows=4), SB3Learner)


def test_top_k_slates_are_distinct_greedy_top_q():
    learner = _learner()
    world = World(CFG)
    world.reset(0)
    obs = world.recommender_obs()
    slates = learner.act(obs, explore=False)
    assert slates.shape == (4, CFG.slate_size) and slates.dtype == np.int64
    assert all(len(set(row)) == CFG.slate_size for row in slates.tolist())
    with torch.no_grad():
        q = learner.model.policy.q_net(torch.as_tensor(obs)).numpy()
    best = np.argsort(-q, axis=1, kind="stable")[:, : CFG.slate_size]
    np.testing.assert_array_equal(slates, best)


def test_trains_and_resumes_exactly(tmp_path):
    loop = SessionLoop(CFG, n_sessions=CFG.n_recommenders, seed=1)
    world = loop.world
    learner = _learner(seed=3)
    for _ in range(30):
        loop.step(learner)
    path = save_checkpoint(tmp_path / "sb3.pt", {"learner": learner.state_dict()})
    twin = _learner(seed=99)
    twin.load_state_dict(load_checkpoint(path)["learner"])  # torch.load(weights_only=True)
    obs = world.recommender_obs()
    ctx = ActContext(world, np.arange(4), world.sessions.user.copy(),
                     world.candidates.item_id.copy())
    np.testing.assert_array_equal(learner.act(obs, ctx, explore=True),
                                  twin.act(obs, ctx, explore=True))


# --------------------------------------------------------------------- no-repeat slate codes
def test_ppo_no_repeat_rejects_bad_spaces():
    with pytest.raises(ValueError, match="no-repeat slates need"):
        make_learner("ppo", make_config("default", slate_size=1), slate_encoding="no_repeat")
    with pytest.raises(ValueError, match="slate_encoding must be one of"):
        make_learner("ppo", CFG, slate_encoding="unique")


def test_ppo_no_repeat_slates_never_repeat_and_train():
    ppo = make_learner("ppo", CFG, n_rows=4, seed=0, slate_encoding="no_repeat", n_steps=8,
                       batch_size=16, n_epochs=1)
    assert ppo.model.action_space.nvec.tolist() == [10, 9, 8]
    loop = SessionLoop(CFG, n_sessions=4, seed=3)
    world = loop.world
    for explore in (True, False):
        slates = ppo.act(world.recommender_obs(), None, explore=explore)
        assert slates.shape == (4, 3)
        assert all(len(set(s)) == 3 for s in slates.tolist())
    before = [p.detach().clone() for p in ppo.model.policy.parameters()]
    for _ in range(16):
        res = loop.step(ppo, explore=True, learn=True).raw.result
        assert (res.impressions == 3).all()  # distinct items fill every position
    assert ppo.model._n_updates == 2  # two rollouts of 8 steps x 4 rows were trained on
    assert any(not torch.equal(a, b) for a, b in zip(before, ppo.model.policy.parameters()))
