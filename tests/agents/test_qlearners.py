"""Tests of our Q-learners: TabularQ, LinearQ, DQN, SlateQ (and their replay and driver).

Every learner is checked for valid slates, determinism, a weights-only save/load round trip,
bit-for-bit resume, correct handling of terminated vs truncated transitions, and learning on a
small easy world. TabularQ's update is also checked by hand.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from agents.base import Learner, Transition
from agents.dqn import DQN
from agents.evaluation import evaluate
from agents.linear_q import LinearQ
from agents.replay import ReplayBuffer, credited_item, linear_schedule, obs_layout
from agents.slateq import SlateQ, choice_probabilities_torch
from agents.tabular_q import TabularQ
from recsim_env import make_config
from recsim_env.choice import choice_probabilities
from recsim_env.items import random_slates
from tests.agents.loops import SessionLoop

# A RecSim-like world that is quick to learn: 4 topics with clearly different quality (topic 3
# is best: it costs little budget), 5 fresh candidates, slates of 2, short sessions.
EASY = make_config("recsim_ie", n_topics=4, topic_quality=(-3.0, -1.0, 1.0, 3.0),
                   n_candidates=5, slate_size=2, session_budget=40.0)
# A small catalog world with every mechanism on (hidden interest, cold-start items, MNL).
SMALL_DEFAULT = make_config("default", n_users=64, n_items_initial=100, n_items_max=300,
                            n_candidates=6, slate_size=3, n_recommenders=4)

_NET = dict(hidden=(32, 32), cross_dim=8, batch_size=64, buffer_size=4_000,
            learning_starts=256, exploration_steps=3_000)
_DEEP = dict(gamma=0.9, target_update_interval=1, tau=0.05, reward_scale=0.25, gradient_steps=2)

LEARNERS: dict[str, Callable[..., Any]] = {
    "tabular": lambda cfg, seed, **kw: TabularQ(
        cfg, seed=seed, **{"gamma": 0.9, "lr": 0.2, "exploration_steps": 3_000, **kw}),
    "linear": lambda cfg, seed, **kw: LinearQ(
        cfg, seed=seed, **{"gamma": 0.9, "lr": 0.05, "exploration_steps": 3_000, **kw}),
    "dqn": lambda cfg, seed, **kw: DQN(cfg, seed=seed, **{**_NET, **_DEEP, **kw}),
    "slateq": lambda cfg, seed, **kw: SlateQ(cfg, seed=seed, **{**_NET, **_DEEP, **kw}),
}
NAMES = list(LEARNERS)


class RandomSlates:
    """Uniformly random slates of distinct candidates (the reference to beat)."""

    privileged = False

    def __init__(self, cfg, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.c, self.k = cfg.n_candidates, cfg.slate_size

    def act(self, obs, context=None, *, explore=True):
        return random_slates(self.rng, obs.shape[0], self.c, self.k)


def _train(learner, cfg, world_steps: int, *, n_sessions: int = 16, seed: int = 0,
           loop: SessionLoop | None = None) -> SessionLoop:
    loop = loop or SessionLoop(cfg, n_sessions=n_sessions, seed=seed, max_session_steps=25)
    for _ in range(world_steps):
        loop.step(learner)
    return loop


def _roundtrip(state: dict) -> dict:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def _assert_same(a: Any, b: Any, path: str = "") -> None:
    """Recursive exact equality of state dicts (tensors bitwise)."""
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            _assert_same(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), path
    else:
        assert a == b, path


# ------------------------------------------------------------------------------ contract
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("cfg", [EASY, make_config("recsim_ie"), SMALL_DEFAULT,
                                 make_config("recsim_ie", choice_model="cascade")],
                         ids=["easy", "recsim_ie", "default", "cascade"])
def test_learner_act_valid_slates(name, cfg):
    learner = LEARNERS[name](cfg, 0)
    assert isinstance(learner, Learner) and learner.privileged is False
    loop = SessionLoop(cfg, n_sessions=8, seed=0)
    obs = loop.obs
    for explore in (True, False):
        slates = learner.act(obs, None, explore=explore)
        assert slates.shape == (8, cfg.slate_size) and slates.dtype == np.int64
        assert ((slates >= 0) & (slates < cfg.n_candidates)).all()
        assert all(len(set(row)) == cfg.slate_size for row in slates.tolist())
    _train(learner, cfg, 20, loop=loop)  # acting and learning run on every world


@pytest.mark.parametrize("name", NAMES)
def test_learner_greedy_act_leaves_state_alone_and_checks_shape(name):
    learner = LEARNERS[name](EASY, 0)
    loop = _train(learner, EASY, 10)
    before = learner.state_dict()
    learner.act(loop.obs, explore=False)  # evaluating must not perturb the training run
    _assert_same(before, learner.state_dict())
    with pytest.raises(ValueError, match="obs must have shape"):
        learner.act(loop.obs[:, :-1])


@pytest.mark.parametrize("name", NAMES)
def test_learner_update_metrics_use_sb3_tags(name):
    learner = LEARNERS[name](EASY, 0)
    info = None
    loop = SessionLoop(EASY, n_sessions=32, seed=0)
    for _ in range(12):
        info = loop.step(learner)
    assert "rollout/exploration_rate" in info.metrics and "train/loss" in info.metrics
    assert all(np.isfinite(v) for v in info.metrics.values())


@pytest.mark.parametrize("name", NAMES)
def test_learner_deterministic_given_seed(name):
    a, b = LEARNERS[name](EASY, 3), LEARNERS[name](EASY, 3)
    _train(a, EASY, 30, seed=5)
    _train(b, EASY, 30, seed=5)
    _assert_same(a.state_dict(), b.state_dict())
    c = LEARNERS[name](EASY, 4)
    _train(c, EASY, 30, seed=5)
    with pytest.raises(AssertionError):
        _assert_same(a.state_dict(), c.state_dict())


@pytest.mark.parametrize("name", NAMES)
def test_learner_save_load_roundtrip_weights_only(name):
    learner = LEARNERS[name](EASY, 0)
    loop = _train(learner, EASY, 30)
    state = _roundtrip(learner.state_dict())
    fresh = LEARNERS[name](EASY, 99)
    fresh.load_state_dict(state)
    _assert_same(learner.state_dict(), fresh.state_dict())
    obs = loop.obs
    np.testing.assert_array_equal(learner.act(obs, explore=False), fresh.act(obs, explore=False))
    # the generator state travels too, so exploration continues identically
    np.testing.assert_array_equal(learner.act(obs, explore=True), fresh.act(obs, explore=True))


@pytest.mark.parametrize("name", NAMES)
def test_learner_resume_equals_uninterrupted(name):
    n_first, n_more = 20, 15
    whole = LEARNERS[name](EASY, 1)
    _train(whole, EASY, n_first + n_more, seed=2)

    first = LEARNERS[name](EASY, 1)
    loop = _train(first, EASY, n_first, seed=2)
    resumed = LEARNERS[name](EASY, 7)
    resumed.load_state_dict(_roundtrip(first.state_dict()))
    _train(resumed, EASY, n_more, loop=loop)  # same world continues, new learner object
    _assert_same(whole.state_dict(), resumed.state_dict())


def _batch_from(loop: SessionLoop, learner, n_steps: int) -> Transition:
    """A real transition batch, recorded from the loop's next step."""
    captured: list[Transition] = []

    class Spy:
        privileged = False

        def act(self, obs, context=None, *, explore=True):
            return learner.act(obs, context, explore=False)

        def update(self, batch):
            captured.append(batch)
            return {}

    for _ in range(n_steps):
        loop.step(Spy())
    return captured[-1]


def _learned_params(learner) -> dict:
    """The state without the replay contents (which hold the raw next observations)."""
    return {k: v for k, v in learner.state_dict().items() if k != "replay"}


@pytest.mark.parametrize("name", NAMES)
def test_learner_bootstraps_on_truncation_not_termination(name):
    """With ``terminated``, ``next_obs`` must not matter; with ``truncated`` it must."""
    n = 32
    # deep learners: a replay of exactly one batch, so every sampled row is from that batch
    kw = dict(buffer_size=n, learning_starts=n, batch_size=n) if name in ("dqn", "slateq") else {}
    loop = SessionLoop(EASY, n_sessions=n, seed=0)
    base = LEARNERS[name](EASY, 0, **kw)
    _train(base, EASY, 3, loop=loop)  # non-trivial values
    if name == "tabular":
        base.q[:] = np.random.default_rng(0).normal(size=base.q.shape)  # nonzero bootstrap
    batch = _batch_from(loop, base, 1)
    other = _batch_from(loop, base, 1).next_obs  # different next observations
    ones, zeros = np.ones(n, bool), np.zeros(n, bool)
    for flag in ("terminated", "truncated"):
        outs = []
        for next_obs in (batch.next_obs, other):
            learner = LEARNERS[name](EASY, 0, **kw)
            learner.load_state_dict(base.state_dict())
            term = flag == "terminated"
            learner.update(batch._replace(next_obs=next_obs, terminated=ones if term else zeros,
                                          truncated=zeros if term else ones))
            outs.append(_learned_params(learner))
        if flag == "terminated":
            _assert_same(*outs)
        else:
            with pytest.raises(AssertionError):
                _assert_same(*outs)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_learner_beats_random_on_easy_world(name, seed):
    learner = LEARNERS[name](EASY, seed)
    _train(learner, EASY, 6_144 // 32, n_sessions=32, seed=seed)
    # the first session of each of 256 slots, followed to its end (a one-step window)
    ours = evaluate(learner, EASY, seed=100 + seed, n_sessions=256, steps=1, ground_truth=False)
    rand = evaluate(RandomSlates(EASY, seed), EASY, seed=100 + seed, n_sessions=256, steps=1,
                    ground_truth=False)
    # random: about 35; always the best topic: about 47
    assert ours["return"] > rand["return"] + 3.0, (ours["return"], rand["return"])


# ------------------------------------------------------------------------------ TabularQ
def _two_state_setup():
    """Two topics, interest observed: state A = likes topic 0, state B = likes topic 1."""
    cfg = make_config("recsim_ie", n_topics=2, topic_quality=(0.0, 0.0), n_candidates=2,
                      slate_size=1)
    lay = obs_layout(cfg)
    learner = TabularQ(cfg, seed=0, gamma=0.5, lr=0.5, n_progress_bins=1)

    def obs(liked_topic: int) -> np.ndarray:
        o = np.zeros(lay.size, np.float32)
        o[2 + 3 + liked_topic] = 1.0  # interest (after history and the 3 session features)
        _, cand = lay.split(o[None])
        cand[0, 0, 0] = 1.0  # candidate 0: topic 0
        cand[0, 1, 1] = 1.0  # candidate 1: topic 1
        return o

    return learner, obs(0), obs(1)


def test_tabular_discretiser_two_states():
    learner, a, b = _two_state_setup()
    d = learner.discretiser
    assert d.n_states == 3 and d.n_item_classes == 4  # (2 topics + new) x 1 bin; 2 x cold
    np.testing.assert_array_equal(d.states(np.stack([a, b])), [0, 1])
    np.testing.assert_array_equal(d.item_classes(a[None]), [[0, 2]])  # topic 0, topic 1


def test_tabular_update_by_hand():
    learner, a, b = _two_state_setup()
    q = learner.q
    q[1, 0], q[1, 2] = 4.0, 10.0  # in B: Q(topic 0) = 4, Q(topic 1) = 10
    q[0, 2] = 2.0  # in A: Q(topic 1) = 2

    def step(obs, action, reward, next_obs, terminated, truncated, clicked):
        n = len(action)
        learner.update(Transition(
            np.stack(obs), np.array(action).reshape(n, 1), np.array(reward, float),
            np.stack(next_obs), np.array(terminated), np.array(truncated),
            np.array(clicked)))

    # A --(recommend topic 1, clicked, r=1)--> B, not done:
    # Q(A,1) = 2 + 0.5 * (1 + 0.5 * max(4, 10) - 2) = 2 + 0.5 * 4 = 4
    step([a], [1], [1.0], [b], [False], [False], [0])
    assert q[0, 2] == pytest.approx(4.0)
    # truncated: still bootstraps. Q(A,1) = 4 + 0.5 * (1 + 5 - 4) = 5
    step([a], [1], [1.0], [b], [False], [True], [0])
    assert q[0, 2] == pytest.approx(5.0)
    # terminated: no bootstrap. Q(A,1) = 5 + 0.5 * (1 - 5) = 3
    step([a], [1], [1.0], [b], [True], [False], [0])
    assert q[0, 2] == pytest.approx(3.0)
    # no click: credited to the first slot (here the only one); r = 0 from B, topic 0:
    # Q(B,0) = 4 + 0.5 * (0 + 0.5 * max(Q(A,0)=0, Q(A,1)=3) - 4) = 4 + 0.5 * (1.5 - 4) = 2.75
    step([b], [0], [0.0], [a], [False], [False], [-1])
    assert q[1, 0] == pytest.approx(2.75)
    # two rows on one cell: one update with the mean TD error.
    # TD errors from Q(A,1)=3: (1 + 0.5*10 - 3) = 3 and (3 - 3) = 0 (terminated, r=3): mean 1.5
    step([a, a], [1, 1], [1.0, 3.0], [b, b], [False, True], [False, False], [0, 0])
    assert q[0, 2] == pytest.approx(3.0 + 0.5 * 1.5)


def test_tabular_new_user_bin_without_history():
    cfg = SMALL_DEFAULT  # interest hidden: the state uses the consumption history
    learner = TabularQ(cfg, seed=0)
    lay = obs_layout(cfg)
    obs = np.zeros((2, lay.size), np.float32)
    obs[1, 3] = 0.5  # some history on topic 3
    s = learner.discretiser.states(obs)
    nb = learner.discretiser.n_progress_bins
    np.testing.assert_array_equal(s // nb, [cfg.n_topics, 3])


# ------------------------------------------------------------------------------ SlateQ
@pytest.mark.parametrize("model", ["mnl", "proportional", "cascade"])
def test_choice_probabilities_torch_matches_numpy(model):
    cfg = make_config("default", choice_model=model)
    rng = np.random.default_rng(0)
    util = rng.normal(size=(50, 4))
    shown = rng.random((50, 4)) > 0.2
    want = choice_probabilities(util, shown, cfg)
    got = choice_probabilities_torch(torch.from_numpy(util), torch.from_numpy(shown), cfg)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cfg", [make_config("recsim_ie"),
                                 make_config("recsim_ie", choice_model="cascade")],
                         ids=["subsets", "ordered"])
def test_slateq_exact_slate_is_the_argmax_and_greedy_is_valid(cfg):
    exact = SlateQ(cfg, seed=0)
    assert exact.utility == "observed"
    n_expected = 45 if cfg.choice_model != "cascade" else 90
    assert exact.slates.shape == (n_expected, 2)
    obs = SessionLoop(cfg, n_sessions=16, seed=0).obs
    chosen = exact.act(obs, explore=False)
    values = exact.slate_values(obs, exact.slates.numpy()[None].repeat(16, 0))
    best = exact.slate_values(obs, chosen[:, None, :])[:, 0]
    np.testing.assert_allclose(best, values.max(axis=1), rtol=1e-6)
    greedy = SlateQ(cfg, seed=0, max_enumerated_slates=0)
    assert greedy.slates is None
    g = greedy.act(obs, explore=False)
    assert all(len(set(row)) == 2 for row in g.tolist())
    assert (greedy.slate_values(obs, g[:, None, :])[:, 0] <= values.max(axis=1) + 1e-5).all()


def test_slateq_learned_click_model_when_interest_hidden():
    learner = SlateQ(SMALL_DEFAULT, seed=0, **_NET)
    assert learner.utility == "learned"
    loop = SessionLoop(SMALL_DEFAULT, n_sessions=32, seed=0)
    metrics = [loop.step(learner).metrics for _ in range(12)]
    assert "train/click_nll" in metrics[-1] and np.isfinite(metrics[-1]["train/click_nll"])
    with pytest.raises(ValueError, match="observe_interest"):
        SlateQ(SMALL_DEFAULT, utility="observed")


# ------------------------------------------------------------------------------ plumbing
# the checkpoint contents of each learner, in order (kind first, then its model, counters and
# generator states)
STATE_KEYS = {
    "tabular": ["kind", "q", "num_timesteps", "n_updates", "rng"],
    "linear": ["kind", "weight", "num_timesteps", "n_updates", "rng", "torch_rng"],
    "dqn": ["kind", "q_net", "q_target", "optimizer", "replay", "num_timesteps", "n_updates",
            "rng", "torch_rng"],
    "slateq": ["kind", "utility", "q_net", "q_target", "optimizer", "replay", "num_timesteps",
               "n_updates", "rng", "torch_rng"],
}
KINDS = {"tabular": "TabularQ", "linear": "LinearQ", "dqn": "DQN", "slateq": "SlateQ"}


@pytest.mark.parametrize("name", NAMES)
def test_learner_state_format_counters_and_schedule(name):
    learner = LEARNERS[name](EASY, 0)
    assert learner.exploration_rate == 1.0 and learner.num_timesteps == 0
    metrics = SessionLoop(EASY, n_sessions=16, seed=0).step(learner).metrics
    state = learner.state_dict()
    assert list(state) == STATE_KEYS[name] and state["kind"] == KINDS[name]
    assert state["num_timesteps"] == learner.num_timesteps == 16
    eps = linear_schedule(1.0, 0.05, 3_000, 16)
    assert learner.exploration_rate == eps
    assert metrics["rollout/exploration_rate"] == eps
    if name in ("tabular", "linear"):  # one update per batch
        assert state["n_updates"] == 1 and metrics["train/n_updates"] == 1.0
    else:  # not warm yet: stored, no gradient step
        assert state["n_updates"] == 0 and len(learner.replay) == 16
        assert set(metrics) == {"rollout/exploration_rate"}


@pytest.mark.parametrize("name", NAMES)
def test_learner_rejects_bad_hyperparameters(name):
    with pytest.raises(ValueError, match=r"gamma must be in \[0, 1\]"):
        LEARNERS[name](EASY, 0, gamma=1.5)
    with pytest.raises(ValueError, match="lr must be"):
        LEARNERS[name](EASY, 0, lr=0.0)
    if name in ("tabular", "linear"):  # a step size: at most 1
        with pytest.raises(ValueError, match=r"lr must be in \(0, 1\]"):
            LEARNERS[name](EASY, 0, lr=1.5)
        return
    LEARNERS[name](EASY, 0, lr=1.5)  # an Adam learning rate: any positive value
    for field in ("batch_size", "gradient_steps", "target_update_interval"):
        with pytest.raises(ValueError, match=f"{field} must be >= 1"):
            LEARNERS[name](EASY, 0, **{field: 0})
    with pytest.raises(ValueError, match="tau must be"):
        LEARNERS[name](EASY, 0, tau=0.0)


@pytest.mark.parametrize("name,cfg,kw,match", [
    ("tabular", EASY, {"n_progress_bins": 2}, "Q table shape"),
    ("linear", SMALL_DEFAULT, {}, "weight shape"),
    ("slateq", SMALL_DEFAULT, {}, "utility="),  # learned here, observed on EASY
])
def test_learner_load_checks_model_state_before_changing_anything(name, cfg, kw, match):
    other = LEARNERS[name](cfg, 0, **kw)
    _train(other, cfg, 2)
    learner = LEARNERS[name](EASY, 0)
    before = learner.state_dict()
    with pytest.raises(ValueError, match=match):
        learner.load_state_dict(_roundtrip(other.state_dict()))
    _assert_same(before, learner.state_dict())


def test_dqn_module_keeps_its_shared_helpers():
    import agents.dqn as dqn
    import agents.qbase as qbase

    for helper in ("check_q_hyperparameters", "clone_state_dict", "polyak_update"):
        assert helper in dqn.__all__ and getattr(dqn, helper) is getattr(qbase, helper)
    gen = torch.Generator().manual_seed(0)
    online, target = dqn.ItemScorer(3, 2, (4,), 2, gen), dqn.ItemScorer(3, 2, (4,), 2, gen)
    start = dqn.clone_state_dict(target.state_dict())
    dqn.polyak_update(target, online, 0.25)
    for k, v in target.state_dict().items():
        torch.testing.assert_close(v, 0.75 * start[k] + 0.25 * online.state_dict()[k])
    dqn.polyak_update(target, online, 1.0)
    _assert_same(target.state_dict(), online.state_dict())


def test_replay_buffer_ring_and_state():
    buf = ReplayBuffer(5, obs_dim=2, slate_size=1)
    for start in (0, 3):
        n = 3
        obs = np.arange(start, start + n, dtype=np.float32)[:, None].repeat(2, 1)
        buf.add(obs, np.arange(n), np.ones(n), obs + 1, np.zeros(n, bool), np.zeros(n, int))
    assert len(buf) == 5 and buf.pos == 1
    np.testing.assert_array_equal(buf.obs[:, 0], [5, 1, 2, 3, 4])  # row 0 overwritten
    other = ReplayBuffer(5, obs_dim=2, slate_size=1)
    other.load_state_dict(_roundtrip(buf.state_dict()))
    rng_a, rng_b = np.random.default_rng(0), np.random.default_rng(0)
    a, b = buf.sample(7, rng_a), other.sample(7, rng_b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_replay_reused_sample_draws_the_same_rows():
    buf = ReplayBuffer(50, obs_dim=3, slate_size=2)
    rng = np.random.default_rng(1)
    n = 40
    buf.add(rng.random((n, 3), dtype=np.float32), rng.integers(0, 5, (n, 2)),
            rng.random(n), rng.random((n, 3), dtype=np.float32), rng.random(n) < 0.3,
            rng.integers(-1, 2, n))
    rng_a, rng_b = np.random.default_rng(7), np.random.default_rng(7)
    for size in (16, 16, 5):
        fresh, reused = buf.sample(size, rng_a), buf.sample(size, rng_b, reuse=True)
        assert reused.keys() == fresh.keys()
        for k in fresh:
            assert reused[k].dtype == fresh[k].dtype
            np.testing.assert_array_equal(reused[k], fresh[k])
    again = buf.sample(5, rng_b, reuse=True)
    assert again["obs"] is reused["obs"]  # the same arrays, overwritten


def _layer_by_layer(net: Any, user: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """ItemScorer's scores computed by calling its layers (the formulation before the
    no-autograd path and the F.linear calls): the reference both must match bit for bit."""
    h = net.user_in(user)[:, None, :] + net.item_in(items)
    if net.cross_dim:
        h = h + net.cross_in(net.user_proj(user)[:, None, :] * net.item_proj(items))
    return net.head(h).squeeze(-1)


@pytest.mark.parametrize("case", range(24))
def test_item_scorer_paths_bit_identical(case: int) -> None:
    """Scoring without autograd (reused buffers), with autograd, one candidate per row, and
    the training step's hand-written forward/backward pair give exactly the layer-by-layer
    numbers and gradients, for any strides of the input (MKL's results depend on them)."""
    from agents.dqn import ItemScorer, huber_grad

    g = torch.Generator().manual_seed(case)
    user_dim, item_dim = [(43, 24), (13, 68), (3, 2)][case % 3]
    hidden, cross = [((64, 64), 32), ((16,), 2), ((8, 4, 2), 0)][case % 3]
    n, m = [(256, 10), (64, 1), (7, 3), (1, 5), (0, 2), (33, 10)][case % 6]
    layout = case // 6
    net = ItemScorer(user_dim, item_dim, hidden, cross, g)
    if layout == 0:  # an observation batch split into user and candidates (strided views)
        obs = torch.randn(n, user_dim + m * item_dim + 1, generator=g)
        user, items = obs[:, :user_dim], obs[:, user_dim:-1].reshape(n, m, item_dim)
    elif layout == 1:
        user, items = torch.randn(n, user_dim, generator=g), torch.randn(n, m, item_dim,
                                                                         generator=g)
    elif layout == 2:  # candidates axis first
        user = torch.randn(user_dim, n, generator=g).t()
        items = torch.randn(m, n, item_dim, generator=g).transpose(0, 1)
    else:  # features not contiguous
        user = torch.randn(n, user_dim, generator=g)
        items = torch.randn(n, item_dim, m, generator=g).transpose(1, 2)
    ref = _layer_by_layer(net, user, items)
    with torch.inference_mode():  # buffers made here serve the other modes too
        assert torch.equal(net(user, items), ref)
    with torch.no_grad():
        assert torch.equal(net(user, items), ref)
        assert torch.equal(net(user, items), ref)  # buffers reused
    out = net(user, items)
    assert torch.equal(out.detach(), ref.detach())
    if n:
        grads = torch.autograd.grad(ref.square().sum(), list(net.parameters()))
        for a, b in zip(torch.autograd.grad(out.square().sum(), list(net.parameters())), grads):
            assert torch.equal(a, b)
        pick = torch.arange(n) % m
        one = items[torch.arange(n), pick]
        ref_one = _layer_by_layer(net, user, one[:, None, :])[:, 0]
        out_one = net(user, one)
        assert out_one.shape == (n,) and torch.equal(out_one.detach(), ref_one.detach())
        grads = torch.autograd.grad(ref_one.sum(), list(net.parameters()))
        for a, b in zip(torch.autograd.grad(out_one.sum(), list(net.parameters())), grads):
            assert torch.equal(a, b)
        # the hand-written forward/backward pair of the training step, against autograd
        target = torch.randn(n, generator=g) * 2
        ref_one = _layer_by_layer(net, user, one[:, None, :])[:, 0]
        loss = torch.nn.functional.smooth_l1_loss(ref_one, target)
        grads = torch.autograd.grad(loss, list(net.parameters()))
        scores, saved = net.forward_rows(user, one)
        assert torch.equal(scores, ref_one.detach())
        scores.requires_grad_(True)
        (d_scores,) = torch.autograd.grad(
            torch.nn.functional.smooth_l1_loss(scores, target), scores)
        assert torch.equal(huber_grad(scores.detach(), target), d_scores)
        net.backward_rows(saved, d_scores)
        for p, b in zip(net.parameters(), grads):
            assert torch.equal(p.grad, b) and p.grad.stride() == b.stride()


@pytest.mark.parametrize("max_norm", [1e-3, 0.5, 1e6])
def test_clip_grad_norm_is_torchs(max_norm: float) -> None:
    from agents.qbase import clip_grad_norm

    g = torch.Generator().manual_seed(3)
    shapes = [(64, 43), (64,), (64, 24), (32, 43), (1, 64), (1,), (5, 0)]
    ours = [torch.zeros(s, requires_grad=True) for s in shapes]
    theirs = [torch.zeros(s, requires_grad=True) for s in shapes]
    for a, b in zip(ours, theirs):
        a.grad = torch.randn(a.shape, generator=g) * 3
        b.grad = a.grad.clone()
    ours[2].grad = None
    theirs[2].grad = None
    clip_grad_norm(ours, max_norm)
    torch.nn.utils.clip_grad_norm_(theirs, max_norm)
    for a, b in zip(ours, theirs):
        assert (a.grad is None and b.grad is None) or torch.equal(a.grad, b.grad)


def test_credited_item_clicked_else_first_slot():
    action = np.array([[3, 1], [4, 2], [0, 5]])
    np.testing.assert_array_equal(credited_item(action, np.array([1, -1, 0])), [1, 4, 0])


def test_session_loop_terminal_and_truncated_observations():
    records: list[Transition] = []

    class Recorder(RandomSlates):
        def update(self, batch):
            records.append(batch)
            return {}

    loop = SessionLoop(EASY, n_sessions=8, seed=0, max_session_steps=3)
    obs_before = []
    lengths = []
    for _ in range(12):
        obs_before.append(loop.obs.copy())
        lengths.append(loop.step(Recorder(EASY)).episode_lengths)
    assert max(np.concatenate(lengths)) <= 3
    n_trunc = n_term = 0
    for t, batch in enumerate(records):
        np.testing.assert_array_equal(batch.obs, obs_before[t])
        assert not (batch.terminated & batch.truncated).any()
        n_trunc += batch.truncated.sum()
        n_term += batch.terminated.sum()
        live = ~(batch.terminated | batch.truncated)
        if t + 1 < len(records):  # continuing rows: next_obs is the next step's obs
            np.testing.assert_array_equal(batch.next_obs[live], obs_before[t + 1][live])
            # a new session started in ended slots: the next obs differs from next_obs there
            ended = ~live
            if ended.any():
                assert not np.array_equal(batch.next_obs[ended], obs_before[t + 1][ended])
    assert n_trunc > 0


def test_training_and_evaluation_report_session_returns():
    learner = LEARNERS["tabular"](EASY, 0)
    loop = _train(learner, EASY, 2_048 // 32, n_sessions=32)
    assert loop.world.counters["sessions"] > 0
    ev = evaluate(learner, EASY, seed=0, n_sessions=64, steps=1, ground_truth=False)
    assert ev["sessions"] == 64 and ev["censored_sessions"] == 0 and ev["return"] >= 0


@pytest.mark.parametrize("name", ["dqn", "slateq"])
def test_eval_ema_acts_greedily_with_the_averaged_network_and_leaves_training_alone(name):
    plain = LEARNERS[name](SMALL_DEFAULT, 1)
    avg = LEARNERS[name](SMALL_DEFAULT, 1, eval_ema=0.05)
    same = LEARNERS[name](SMALL_DEFAULT, 1, eval_ema=1.0)  # the average is the last step
    loops = [_train(learner, SMALL_DEFAULT, 40, seed=2) for learner in (plain, avg, same)]
    assert avg.n_updates > 0
    # exploring and learning use the online network: the three trained alike
    for other in (avg, same):
        for a, b in zip(plain.q_net.parameters(), other.q_net.parameters(), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    obs = loops[0].obs
    np.testing.assert_array_equal(plain.act(obs, explore=False), same.act(obs, explore=False))
    # the average lags the online weights; greedy acting reads it, then the online net is back
    assert any(not torch.equal(a, b) for a, b in zip(avg.q_eval.parameters(),
                                                     avg.q_net.parameters(), strict=True))
    online = avg.q_net
    greedy = avg.act(obs, explore=False)
    assert avg.q_net is online
    avg.q_net = avg.q_eval  # acting by hand on the average
    np.testing.assert_array_equal(greedy, avg._greedy_slates(obs, False))
    avg.q_net = online
    # the average is saved and restored (weights only), and must match the learner's setting
    state = _roundtrip(avg.state_dict())
    twin = LEARNERS[name](SMALL_DEFAULT, 9, eval_ema=0.05)
    twin.load_state_dict(state)
    np.testing.assert_array_equal(twin.act(obs, explore=False), greedy)
    with pytest.raises(ValueError, match="eval_ema"):
        LEARNERS[name](SMALL_DEFAULT, 9).load_state_dict(state)
    with pytest.raises(ValueError, match="eval_ema"):
        LEARNERS[name](SMALL_DEFAULT, 9, eval_ema=1.5)
