"""The DQN with a per-user memory (agents/memory.py): the memory's arithmetic, that it is fed
through the rollout loop when learning and when only evaluating, per world, and that the
learner keeps the Q-learners' contract (determinism, weights-only state, resume)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from agents.evaluation import evaluate
from agents.factory import make_learner
from agents.hparams import _table, learner_hparams
from agents.memory import MemoryDQN, MemorySlateQ, UserMemory
from recsim_env import make_config
from tests.agents.loops import SessionLoop
from tests.agents.test_qlearners import EASY, SMALL_DEFAULT, RandomSlates, _assert_same

_KW = dict(hidden=(32, 32), cross_dim=8, batch_size=64, buffer_size=4_000, learning_starts=256,
           exploration_steps=3_000, gamma=0.9, tau=0.05, reward_scale=0.25, gradient_steps=2)


MEMORY_LEARNERS = {"memory_dqn": MemoryDQN, "memory_slateq": MemorySlateQ}


def _roundtrip(state: dict) -> dict:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def _train(learner, cfg, steps: int, *, seed: int = 0, loop: SessionLoop | None = None,
           n_sessions: int = 16) -> SessionLoop:
    loop = loop or SessionLoop(cfg, n_sessions=n_sessions, seed=seed, max_session_steps=25)
    for _ in range(steps):
        loop.step(learner)
    return loop


def test_user_memory_update_by_hand():
    mem = UserMemory(content_dim=2, decay=0.5)
    content = np.array([[[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]],
                        [[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]], np.float32)
    users = np.array([3, 0])
    # user 3 is shown candidates 0 and 1 and clicks position 1 (candidate 1); user 0 is shown
    # candidate 2 twice (shown once) and candidate 0, and clicks nothing
    mem.update(users, content, np.array([[0, 1], [2, 2]]), np.array([1, -1]))
    np.testing.assert_allclose(mem.click[3], [0.0, 0.5])
    np.testing.assert_allclose(mem.skip[3], [0.5, 0.0])
    np.testing.assert_allclose(mem.click[0], [0.0, 0.0])
    np.testing.assert_allclose(mem.skip[0], [0.0, 0.5])  # the repeat counts once
    np.testing.assert_array_equal(mem.counts[[3, 0]], [[1, 2], [0, 1]])
    user, cand = mem.features(users, content)
    assert user.shape == (2, mem.user_dim) and cand.shape == (2, 3, 2)
    np.testing.assert_allclose(cand[0, :, 0], [0.0, 0.5, 0.4])  # similarity to the clicks
    np.testing.assert_allclose(user[0, -2:], np.log1p([1, 2]) / 5.0)
    mem.forget(np.array([3]))
    assert not mem.click[3].any() and not mem.counts[3].any()
    with pytest.raises(ValueError, match="memory_decay"):
        UserMemory(2, 1.0)


@pytest.mark.parametrize("name", MEMORY_LEARNERS)
def test_memory_learner_is_its_learner_on_augmented_observations(name):
    learner = make_learner(name, SMALL_DEFAULT, seed=0, **_KW)
    assert isinstance(learner, MEMORY_LEARNERS[name]) and learner.privileged is False
    lay = learner.layout
    assert learner.net_layout.user_dim == lay.user_dim + 2 * lay.content_dim + 2
    assert learner.net_layout.item_dim == lay.item_dim + 2
    assert learner.replay.obs.shape[1] == learner.net_layout.size
    loop = SessionLoop(SMALL_DEFAULT, n_sessions=8, seed=0)
    with pytest.raises(ValueError, match="context"):
        learner.act(loop.obs, None)


@pytest.mark.parametrize("name", MEMORY_LEARNERS)
def test_memory_learner_hparams_extend_its_learners(name):
    own = _table(name)
    assert own["base"]["extends"] == name[7:]
    for scenario in ("default", "recsim_ie", "cold_start"):
        mine, base = learner_hparams(name, scenario), learner_hparams(name[7:], scenario)
        set_here = {"memory_decay", *own.get(scenario, {})}
        assert {k: v for k, v in mine.items() if k not in set_here} == \
            {k: v for k, v in base.items() if k not in set_here}
        assert all(mine[k] == tuple(v) if isinstance(v, list) else mine[k] == v
                   for k, v in own.get(scenario, {}).items())
        assert 0.0 <= mine["memory_decay"] < 1.0


@pytest.mark.parametrize("name", MEMORY_LEARNERS)
def test_memory_is_fed_when_learning_and_when_only_acting(name):
    learner = MEMORY_LEARNERS[name](SMALL_DEFAULT, seed=0, **_KW)
    loop = _train(learner, SMALL_DEFAULT, 20)
    mem = learner._memories[loop.world].user
    assert mem.counts[:, 1].sum() > 0 and np.abs(mem.click).sum() > 0
    # evaluation: the network does not change, the memory of that world grows
    before = {k: v for k, v in learner.state_dict().items() if k != "memory"}
    other = SessionLoop(SMALL_DEFAULT, n_sessions=8, seed=7)
    for _ in range(10):
        other.step(learner, explore=False, learn=False)
    _assert_same(before, {k: v for k, v in learner.state_dict().items() if k != "memory"})
    assert learner._memories[other.world].user.counts[:, 1].sum() == 10 * 8 * SMALL_DEFAULT.slate_size
    # ... and the training world's memory is untouched by it
    np.testing.assert_array_equal(learner._memories[loop.world].user.counts, mem.counts)


def test_memory_forgets_users_that_are_new_each_session():
    cfg = make_config("recsim_ie")
    assert cfg.fresh_user_each_session
    learner = MemoryDQN(cfg, seed=0, **_KW)
    loop = SessionLoop(cfg, n_sessions=8, seed=0, max_session_steps=3)
    for _ in range(3):
        users = loop.world.sessions.user.copy()
        step = loop.step(learner)
    ended = step.raw.ended
    assert ended.any()
    counts = learner._memories[loop.world].user.counts[:, 1]
    assert (counts[users[ended]] == 0).all()  # their sessions ended: forgotten
    assert (counts[users[~ended]] > 0).all()  # still in session: remembered


@pytest.mark.parametrize("name", MEMORY_LEARNERS)
def test_memory_learner_deterministic_and_resumes_exactly(name):
    cls = MEMORY_LEARNERS[name]
    whole = cls(SMALL_DEFAULT, seed=1, **_KW)
    _train(whole, SMALL_DEFAULT, 35, seed=2)
    first = cls(SMALL_DEFAULT, seed=1, **_KW)
    loop = _train(first, SMALL_DEFAULT, 20, seed=2)
    resumed = cls(SMALL_DEFAULT, seed=9, **_KW)
    resumed.load_state_dict(_roundtrip(first.state_dict()))
    _train(resumed, SMALL_DEFAULT, 15, loop=loop)  # the memory re-attaches to the world
    _assert_same(whole.state_dict(), resumed.state_dict())
    other = cls(SMALL_DEFAULT, seed=2, **_KW)
    _train(other, SMALL_DEFAULT, 35, seed=2)
    with pytest.raises(AssertionError):
        _assert_same(whole.state_dict(), other.state_dict())


def test_memory_dqn_beats_random_on_easy_world():
    learner = MemoryDQN(EASY, seed=0, **_KW)
    _train(learner, EASY, 6_144 // 32, n_sessions=32)
    ours = evaluate(learner, EASY, seed=100, n_sessions=256, steps=1, ground_truth=False)
    rand = evaluate(RandomSlates(EASY, 0), EASY, seed=100, n_sessions=256, steps=1,
                    ground_truth=False)
    assert ours["return"] > rand["return"] + 3.0, (ours["return"], rand["return"])
