"""The DQN with a per-user memory (agents/memory.py): the memory's arithmetic, that it is fed
through the rollout loop when learning and when only evaluating, per world, and that the
learner keeps the Q-learners' contract (determinism, weights-only state, resume)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from agents.checkpoint import load_checkpoint, save_checkpoint
from agents.dqn import DQN
from agents.evaluation import evaluate
from agents.factory import make_learner
from agents.hparams import _table, learner_hparams
from agents.memory import (
    ITEM_MEMORY_FEATURES,
    ItemMemory,
    MemoryDQN,
    MemorySlateQ,
    UserMemory,
    WorldMemory,
)
from agents.replay import obs_layout
from agents.sb3 import MemorySB3Learner
from agents.sb3_policies import CandidateScoringPolicy
from agents.slateq import SlateQ
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
        set_here = {*own["base"], *own.get(scenario, {})} - {"extends"}
        assert {k: v for k, v in mine.items() if k not in set_here} == \
            {k: v for k, v in base.items() if k not in set_here}
        assert all(mine[k] == tuple(v) if isinstance(v, list) else mine[k] == v
                   for k, v in own.get(scenario, {}).items())
        assert 0.0 <= mine["memory_decay"] < 1.0


@pytest.mark.parametrize("name", MEMORY_LEARNERS)
def test_memory_is_fed_when_learning_and_when_only_acting(name):
    learner = MEMORY_LEARNERS[name](SMALL_DEFAULT, seed=0, **_KW)
    loop = _train(learner, SMALL_DEFAULT, 20)
    mem = learner.platform_memory.of(loop.world).user
    assert mem.counts[:, 1].sum() > 0 and np.abs(mem.click).sum() > 0
    # evaluation: the network does not change, the memory of that world grows
    before = {k: v for k, v in learner.state_dict().items() if k != "memory"}
    other = SessionLoop(SMALL_DEFAULT, n_sessions=8, seed=7)
    for _ in range(10):
        other.step(learner, explore=False, learn=False)
    _assert_same(before, {k: v for k, v in learner.state_dict().items() if k != "memory"})
    shown = learner.platform_memory.of(other.world).user.counts[:, 1].sum()
    assert shown == 10 * 8 * SMALL_DEFAULT.slate_size
    # ... and the training world's memory is untouched by it
    np.testing.assert_array_equal(learner.platform_memory.of(loop.world).user.counts, mem.counts)


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
    counts = learner.platform_memory.of(loop.world).user.counts[:, 1]
    assert (counts[users[ended]] == 0).all()  # their sessions ended: forgotten
    assert (counts[users[~ended]] > 0).all()  # still in session: remembered


@pytest.mark.parametrize("memory", [{}, {"item_memory": True},
                                    {"user_memory": False, "item_memory": True}],
                         ids=["users", "users+items", "items"])
@pytest.mark.parametrize("name", MEMORY_LEARNERS)
def test_memory_learner_deterministic_and_resumes_exactly(name, memory):
    cls = MEMORY_LEARNERS[name]
    kw = dict(_KW, **memory)
    whole = cls(SMALL_DEFAULT, seed=1, **kw)
    _train(whole, SMALL_DEFAULT, 35, seed=2)
    first = cls(SMALL_DEFAULT, seed=1, **kw)
    loop = _train(first, SMALL_DEFAULT, 20, seed=2)
    state = first.state_dict()
    assert ("item_memory" in state) == memory.get("item_memory", False)
    assert ("memory" in state) == memory.get("user_memory", True)
    resumed = cls(SMALL_DEFAULT, seed=9, **kw)
    resumed.load_state_dict(_roundtrip(first.state_dict()))
    _train(resumed, SMALL_DEFAULT, 15, loop=loop)  # the memory re-attaches to the world
    _assert_same(whole.state_dict(), resumed.state_dict())
    other = cls(SMALL_DEFAULT, seed=2, **kw)
    _train(other, SMALL_DEFAULT, 35, seed=2)
    with pytest.raises(AssertionError):
        _assert_same(whole.state_dict(), other.state_dict())


@pytest.mark.parametrize("name", MEMORY_LEARNERS)
def test_memory_learner_with_every_memory_off_is_its_plain_learner(name):
    """With ``user_memory`` and ``item_memory`` off the observation is the world's own, and
    the learner trains bit for bit as its plain counterpart (the suite's rows rely on it where
    a memory table turns both off)."""
    plain_cls = {"memory_dqn": DQN, "memory_slateq": SlateQ}[name]
    off = MEMORY_LEARNERS[name](SMALL_DEFAULT, seed=4, user_memory=False, **_KW)
    plain = plain_cls(SMALL_DEFAULT, seed=4, **_KW)
    assert off.net_layout.size == obs_layout(SMALL_DEFAULT).size
    for learner in (off, plain):
        _train(learner, SMALL_DEFAULT, 30, seed=1)
    assert off.n_updates > 0
    state = off.state_dict()
    assert state.pop("kind") == off.kind and "memory" not in state
    _assert_same(state, {k: v for k, v in plain.state_dict().items() if k != "kind"})


def test_memory_dqn_beats_random_on_easy_world():
    learner = MemoryDQN(EASY, seed=0, **_KW)
    _train(learner, EASY, 6_144 // 32, n_sessions=32)
    ours = evaluate(learner, EASY, seed=100, n_sessions=256, steps=1, ground_truth=False)
    rand = evaluate(RandomSlates(EASY, 0), EASY, seed=100, n_sessions=256, steps=1,
                    ground_truth=False)
    assert ours["return"] > rand["return"] + 3.0, (ours["return"], rand["return"])


def test_item_memory_by_hand():
    mem = ItemMemory(prior=2.0)
    ids = np.array([[0, 1, 2], [1, 2, -1], [0, 3, 1]])
    born = np.array([[5, 6, 7], [6, 7, -1], [5, 8, 6]])
    prov = np.array([[0, 0, 1], [0, 1, 1], [0, -1, 0]])
    # no clicks yet: every estimate is the prior (the mean over all clicks, 1 when none)
    np.testing.assert_array_equal(mem.features(ids, born, prov), 0.0)
    # row 0 clicks item 1 (reward 6), row 1 clicks item 1 too (reward 2), row 2 clicks item 3
    # (no provider, reward 4): item 1 is counted twice in one step
    mem.update(ids, born, prov, np.array([[1, 0], [0, 2], [1, 2]]), np.array([0, 0, 0]),
               np.array([6.0, 2.0, 4.0]))
    np.testing.assert_array_equal(mem.total, [3, 12])
    np.testing.assert_array_equal(mem.item[1], [2, 8])
    np.testing.assert_array_equal(mem.item[3], [1, 4])
    np.testing.assert_array_equal(mem.provider[0], [2, 8])
    f = mem.features(ids, born, prov)
    assert f.shape == (3, 3, len(ITEM_MEMORY_FEATURES))
    g = 4.0
    p0 = (8 + 2 * g) / (2 + 2)  # provider 0: 3.5
    np.testing.assert_allclose(f[0, 1, 1], p0 / g - 1, rtol=1e-6)
    np.testing.assert_allclose(f[0, 1, 0], (8 + 2 * p0) / (2 + 2) / g - 1, rtol=1e-6)
    np.testing.assert_allclose(f[0, 0, 0], p0 / g - 1, rtol=1e-6)  # item 0: its provider's
    np.testing.assert_allclose(f[2, 1, :2], 0.0, atol=1e-7)  # item 3: no provider, (4+8)/3 = g
    np.testing.assert_allclose(f[0, 1, 2:], np.log1p([2, 2]) / 5.0, rtol=1e-6)
    np.testing.assert_array_equal(f[1, 2], 0.0)  # a fresh document: no record, no provider
    # id 1 now holds an item published at step 9: its record is cleared
    ids2, born2 = np.array([[1]]), np.array([[9]])
    f2 = mem.features(ids2, born2, np.array([[0]]))
    np.testing.assert_allclose(f2[0, 0, 0], p0 / g - 1, rtol=1e-6)
    assert f2[0, 0, 2] == 0.0
    with pytest.raises(ValueError, match="item_memory_prior"):
        ItemMemory(0.0)
    # only fresh documents without providers (recsim_ie): clicks count toward the mean only
    fresh = ItemMemory(prior=2.0)
    none = np.full((2, 3), -1)
    fresh.update(none, none, none, np.array([[0, 1], [2, 0]]), np.array([1, -1]),
                 np.array([3.0, 0.0]))
    np.testing.assert_array_equal(fresh.total, [1, 3])
    np.testing.assert_array_equal(fresh.features(none, none, none), 0.0)


def test_item_memory_ranks_items_by_their_hidden_quality():
    """What the item memory learns from a random policy's clicks tracks the items' true
    (hidden) quality: the record carries the signal the learner needs."""
    from scipy.stats import spearmanr

    cfg = make_config("default", n_users=400)
    learner = MemoryDQN(cfg, seed=0, item_memory=True, item_memory_prior=2.0, **_KW)
    loop = SessionLoop(cfg, n_sessions=64, seed=3)
    for _ in range(150):
        loop.step(learner, explore=True, learn=False)  # learning_starts: acts at random
    item = learner.platform_memory.of(loop.world).item
    cat = loop.world.catalog
    n = cat.active.size  # the memory's tables may be longer (they grow by doubling)
    ids = np.flatnonzero(cat.active & (item.item_born[:n] == cat.born_at)
                         & (item.item[:n, 0] >= 3))
    assert ids.size > 30
    mean_reward = item.item[ids, 1] / item.item[ids, 0]
    rho = spearmanr(mean_reward, cat.quality[ids]).statistic
    assert rho > 0.3, (rho, ids.size)


@pytest.mark.parametrize("item_memory", [False, True])
def test_ppo_with_memory_scores_candidates_on_augmented_observations(item_memory, tmp_path):
    learner = make_learner("ppo", SMALL_DEFAULT, n_rows=8, seed=0, memory=True,
                           item_memory=item_memory, n_steps=8, batch_size=32, n_epochs=1)
    assert isinstance(learner, MemorySB3Learner)
    lay = learner.platform_memory.net_layout
    assert learner.model.observation_space.shape == (lay.size,)
    assert isinstance(learner.model.policy, CandidateScoringPolicy)
    assert learner.model.policy.scores_candidates
    loop = SessionLoop(SMALL_DEFAULT, n_sessions=8, seed=0, max_session_steps=25)
    for _ in range(20):  # two rollouts of 8 steps: PPO trains
        loop.step(learner)
    assert learner.model._n_updates > 0
    mem = learner.platform_memory.of(loop.world)
    assert mem.user.counts[:, 1].sum() == 20 * 8 * SMALL_DEFAULT.slate_size
    assert (mem.item is not None) == item_memory
    path = save_checkpoint(tmp_path / "ppo.pt", {"learner": learner.state_dict()})
    state = load_checkpoint(path)["learner"]  # torch.load(weights_only=True)
    assert ("item_memory" in state) == item_memory and "memory" in state
    again = make_learner("ppo", SMALL_DEFAULT, n_rows=8, seed=5, memory=True,
                         item_memory=item_memory, n_steps=8, batch_size=32, n_epochs=1)
    again.load_state_dict(state)
    _assert_same(learner.model.policy.state_dict(), again.model.policy.state_dict())
    with pytest.raises(ValueError, match="context"):
        learner.act(loop.obs, None)


def test_ppo_with_every_memory_off_is_plain_ppo():
    """``user_memory = false`` and ``item_memory = false``: the observations are not
    augmented, and PPO with memory trains bit for bit as plain PPO with the same seed."""
    kw = dict(n_rows=8, seed=3, n_steps=8, batch_size=32, n_epochs=1)

    def trained(**options):  # SB3 samples from torch's global generator, which it seeds
        learner = make_learner("ppo", SMALL_DEFAULT, **options, **kw)
        loop = SessionLoop(SMALL_DEFAULT, n_sessions=8, seed=0, max_session_steps=25)
        for _ in range(20):
            loop.step(learner)
        return learner

    off, plain = trained(memory=True, user_memory=False), trained()
    assert off.model.observation_space.shape == plain.model.observation_space.shape
    assert off.model._n_updates > 0
    _assert_same(off.model.policy.state_dict(), plain.model.policy.state_dict())
    assert off.state_dict().keys() == plain.state_dict().keys()  # nothing remembered
    # the item memory alone: candidates gain its features, the user part stays the world's
    items = make_learner("ppo", SMALL_DEFAULT, memory=True, user_memory=False,
                         item_memory=True, **kw)
    lay, world = items.platform_memory.net_layout, obs_layout(SMALL_DEFAULT)
    assert lay.user_dim == world.user_dim
    assert lay.item_dim == world.item_dim + len(ITEM_MEMORY_FEATURES)
    loop = SessionLoop(SMALL_DEFAULT, n_sessions=8, seed=0, max_session_steps=25)
    for _ in range(10):
        loop.step(items)
    state = items.state_dict()
    assert "item_memory" in state and "memory" not in state
    with pytest.raises(ValueError, match="disagree on user_memory"):
        WorldMemory(UserMemory(4, 0.9), ItemMemory(2.0)).load_state_dict(state)
    with pytest.raises(ValueError, match="user_memory must be true or false"):
        make_learner("ppo", SMALL_DEFAULT, memory=True, user_memory=0, **kw)


def test_memory_options_of_sb3_learners_are_checked():
    with pytest.raises(ValueError, match="only ppo and a2c"):
        make_learner("sb3_dqn", SMALL_DEFAULT, n_rows=4, memory=True)
    with pytest.raises(ValueError, match="only ppo and a2c"):
        make_learner("ppo", SMALL_DEFAULT, role="provider", n_rows=4, memory=True)
    with pytest.raises(ValueError, match="item_memory: an option of SB3 learners with memory"):
        make_learner("ppo", SMALL_DEFAULT, n_rows=4, item_memory=True)


def test_rollout_context_names_each_candidates_provider_and_publication_step():
    """What the item memory keys on comes from the rollout loop, and is the catalog's public
    metadata of the very candidates shown (fresh documents: -1)."""
    seen = []

    class Recorder(RandomSlates):
        def act(self, obs, context=None, *, explore=True):
            w = context.world
            ids = context.item_ids
            seen.append((ids.copy(), context.providers.copy(), context.item_born.copy(),
                         w.candidates.provider[context.slots].copy(),
                         np.where(ids >= 0, w.catalog.born_at[np.maximum(ids, 0)], -1)
                         if w.catalog is not None else np.full_like(ids, -1)))
            return super().act(obs, context, explore=explore)

    for cfg in (SMALL_DEFAULT, make_config("recsim_ie")):
        seen.clear()
        loop, rec = SessionLoop(cfg, n_sessions=8, seed=0, max_session_steps=25), Recorder(cfg)
        for _ in range(30):
            loop.step(rec, learn=False)
        for _, prov, born, want_prov, want_born in seen:
            np.testing.assert_array_equal(prov, want_prov)
            np.testing.assert_array_equal(born, want_born)
        if cfg.candidate_source == "catalog":
            assert (seen[-1][0] >= 0).all() and (seen[-1][1] >= 0).any()
        else:
            assert (seen[-1][0] == -1).all() and (seen[-1][2] == -1).all()


def test_transitions_name_the_candidates_their_next_observation_shows():
    """Candidates are drawn anew every step: the rollout's next_context names those of
    next_obs (this step's where the session ended); the item memory needs it."""
    acts, batches = [], []

    class Recorder(RandomSlates):
        def act(self, obs, context=None, *, explore=True):
            acts.append(context)
            return super().act(obs, context, explore=explore)

        def observe(self, batch):
            batches.append(batch)

    loop, rec = SessionLoop(SMALL_DEFAULT, n_sessions=8, seed=0), Recorder(SMALL_DEFAULT)
    for _ in range(40):
        loop.step(rec, learn=False)
    ended_some = False
    for batch, following in zip(batches[:-1], acts[1:], strict=True):
        nxt, ended = batch.next_context, batch.terminated
        np.testing.assert_array_equal(nxt.user_ids, batch.context.user_ids)
        for f in ("item_ids", "providers", "item_born"):
            np.testing.assert_array_equal(getattr(nxt, f)[~ended], getattr(following, f)[~ended])
            np.testing.assert_array_equal(getattr(nxt, f)[ended], getattr(batch.context, f)[ended])
        ended_some |= ended.any()
    assert ended_some
    assert any((b.next_context.item_ids != b.context.item_ids).any() for b in batches)
    # the memory refuses a transition without it rather than misalign the features
    learner = MemoryDQN(SMALL_DEFAULT, seed=0, item_memory=True, **_KW)
    with pytest.raises(ValueError, match="next_context"):
        learner.observe(batches[-1]._replace(next_context=None))
