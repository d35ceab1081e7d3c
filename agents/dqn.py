"""Deep Q-learning with an item-wise scoring network, plus a batched training driver.

**Network** (:class:`ItemScorer`): ``Q(s, i) = f(user features of s, features of candidate
i)``, one network shared by every candidate, so it scores items it has never seen (cold start)
from their content alone. Its first layer is a linear layer over ``[u, c, (P u) * (R c)]``: the
user part, the candidate part and a low-rank factorised cross term (a learned "interest in
this item" that a plain MLP over ``[u, c]`` finds slowly). The user part of that layer is
computed once per row and broadcast over the candidates, which makes scoring ``C`` candidates
cost little more than scoring one.

**Learner** (:class:`DQN`): double DQN (the online network picks the next candidate, the target
network scores it), a target network updated every ``target_update_interval`` gradient steps
by Polyak averaging with ``tau`` (``tau = 1``: hard copy), a preallocated replay buffer
(:class:`agents.replay.ReplayBuffer`), a linear epsilon schedule over transitions, Huber loss,
Adam and gradient-norm clipping. Actions are batched over sessions: ``act`` scores every
candidate of every row in one forward pass and takes the top ``slate_size``.

Slates: with ``slate_size == 1`` the slate is the item and this is textbook DQN. With larger
slates it is "SlateQ-lite": the transition is credited to the clicked item (the first slot
when nothing was clicked, :func:`agents.replay.credited_item`), the target bootstraps from the
best single next candidate, and the slate is the top-k items by Q. :mod:`agents.slateq` does
the slate decomposition properly.

Terminated transitions do not bootstrap; truncated ones do (from their final observation).

**Driver**: :class:`SessionLoop` steps a :class:`recsim_env.World` of many session slots with
one learner, builds the :class:`agents.base.Transition` batches (terminal observations for
ended sessions, optional truncation at ``max_session_steps``) and tracks session returns;
:func:`train_on_world` and :func:`evaluate_on_world` are thin loops over it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from agents.base import ActContext, Transition
# check_q_hyperparameters, clone_state_dict and polyak_update moved to agents.qbase; they stay
# importable from here (public names of this module)
from agents.qbase import (
    ReplayQLearner,
    check_q_hyperparameters,
    clone_state_dict,
    polyak_update,
)
from agents.replay import credited_item
from recsim_env.config import EnvConfig
from recsim_env.world import World

__all__ = [
    "DQN",
    "ItemScorer",
    "SessionLoop",
    "TrainLog",
    "check_q_hyperparameters",
    "clone_state_dict",
    "evaluate_on_world",
    "make_linear",
    "polyak_update",
    "train_on_world",
]

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------- network
def make_linear(n_in: int, n_out: int, generator: torch.Generator, *, bias: bool = True
                ) -> nn.Linear:
    """An ``nn.Linear`` initialised from ``generator`` (never the global torch RNG).

    Same distribution as PyTorch's default: weights and bias ``U(-1/sqrt(n_in), 1/sqrt(n_in))``.
    """
    layer = nn.utils.skip_init(nn.Linear, n_in, n_out, bias=bias)
    bound = 1.0 / np.sqrt(max(n_in, 1))
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound, generator=generator)
        if bias:
            layer.bias.uniform_(-bound, bound, generator=generator)
    return layer


class ItemScorer(nn.Module):
    """Item-wise scorer ``f(u, c) -> scalar``, shared over candidates (see module docstring).

    Args:
        user_dim: length of the user features ``u``.
        item_dim: length of one candidate's features ``c``.
        hidden: hidden layer sizes (at least one).
        cross_dim: rank of the factorised user x item cross term (0 disables it).
        generator: torch generator for the initial weights.
    """

    def __init__(self, user_dim: int, item_dim: int, hidden: Sequence[int], cross_dim: int,
                 generator: torch.Generator) -> None:
        super().__init__()
        if len(hidden) < 1:
            raise ValueError(f"hidden must name at least one layer size, got {hidden!r}")
        h0 = hidden[0]
        self.user_in = make_linear(user_dim, h0, generator)
        self.item_in = make_linear(item_dim, h0, generator, bias=False)
        self.cross_dim = int(cross_dim)
        if self.cross_dim:
            self.user_proj = make_linear(user_dim, cross_dim, generator, bias=False)
            self.item_proj = make_linear(item_dim, cross_dim, generator, bias=False)
            self.cross_in = make_linear(cross_dim, h0, generator, bias=False)
        layers: list[nn.Module] = []
        for a, b in zip(hidden[:-1], hidden[1:]):
            layers += [nn.ReLU(), make_linear(a, b, generator)]
        layers += [nn.ReLU(), make_linear(hidden[-1], 1, generator)]
        self.head = nn.Sequential(*layers)

    def forward(self, user: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Score candidates.

        Args:
            user: (n, user_dim) float32.
            items: (n, m, item_dim) float32.

        Returns:
            (n, m) float32.
        """
        h = self.user_in(user)[:, None, :] + self.item_in(items)
        if self.cross_dim:
            h = h + self.cross_in(self.user_proj(user)[:, None, :] * self.item_proj(items))
        return self.head(h).squeeze(-1)


# ---------------------------------------------------------------------------------- learner
class DQN(ReplayQLearner):
    """Double DQN over an item-wise scoring network (see the module docstring).

    The replay, epsilon schedule, acting, update loop, gradient step, target updates and state
    are :class:`agents.qbase.ReplayQLearner`'s; the network and the target are this class's.

    Args:
        config: the world's config (observation layout, slate size).
        seed: seed of the learner's own numpy and torch generators.
        gamma: discount.
        lr: Adam learning rate.
        batch_size: replayed transitions per gradient step.
        buffer_size: replay capacity (rows).
        learning_starts: transitions stored before the first gradient step.
        gradient_steps: gradient steps per :meth:`update` call (one call per world step in the
            driver, so ``gradient_steps * batch_size / n_sessions`` replayed rows per env step).
        target_update_interval: gradient steps between target updates.
        tau: Polyak coefficient of a target update (1.0 = hard copy).
        exploration_initial_eps, exploration_final_eps, exploration_steps: linear epsilon
            schedule over transitions (rows).
        max_grad_norm: gradient-norm clip.
        hidden: hidden layer sizes of the scorer.
        cross_dim: rank of the scorer's user x item cross term.
        reward_scale: rewards are multiplied by this before learning (Q is in scaled units;
            acting is unaffected).
        double_q: double DQN target (else the target network's own max).
    """

    kind = "DQN"

    def __init__(
        self,
        config: EnvConfig,
        *,
        seed: int = 0,
        gamma: float = 0.99,
        lr: float = 1e-3,
        batch_size: int = 256,
        buffer_size: int = 50_000,
        learning_starts: int = 1_000,
        gradient_steps: int = 1,
        target_update_interval: int = 1,
        tau: float = 0.01,
        exploration_initial_eps: float = 1.0,
        exploration_final_eps: float = 0.05,
        exploration_steps: int = 50_000,
        max_grad_norm: float = 10.0,
        hidden: Sequence[int] = (64, 64),
        cross_dim: int = 32,
        reward_scale: float = 1.0,
        double_q: bool = True,
    ) -> None:
        super().__init__(
            config, seed=seed, gamma=gamma, lr=lr, batch_size=batch_size,
            buffer_size=buffer_size, learning_starts=learning_starts,
            gradient_steps=gradient_steps, target_update_interval=target_update_interval,
            tau=tau, exploration_initial_eps=exploration_initial_eps,
            exploration_final_eps=exploration_final_eps, exploration_steps=exploration_steps,
            max_grad_norm=max_grad_norm, reward_scale=reward_scale)
        self.double_q = bool(double_q)
        self._set_networks(ItemScorer(self.layout.user_dim, self.layout.item_dim, tuple(hidden),
                                      cross_dim, self.torch_rng))

    @torch.no_grad()
    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """(n, obs_dim) -> (n, n_candidates) float32 online Q of every candidate."""
        return self.q_net(*self._split(obs)).numpy()

    def _train_step(self, b: dict[str, np.ndarray]) -> dict[str, float]:
        n = b["obs"].shape[0]
        rows = torch.arange(n)
        user, cand = self._split(b["obs"])
        a = torch.from_numpy(credited_item(b["action"], b["clicked"]))
        q_sa = self.q_net(user, cand[rows, a][:, None, :])[:, 0]
        with torch.no_grad():
            user_n, cand_n = self._split(b["next_obs"])
            if self.double_q:
                a_next = self.q_net(user_n, cand_n).argmax(dim=1)
                q_next = self.q_target(user_n, cand_n[rows, a_next][:, None, :])[:, 0]
            else:
                q_next = self.q_target(user_n, cand_n).max(dim=1).values
            target = self._td_target(b, q_next)
        loss = nn.functional.smooth_l1_loss(q_sa, target)
        self._gradient_step(loss)
        return {"train/loss": float(loss.detach()), "train/q_mean": float(q_sa.detach().mean())}


# ---------------------------------------------------------------------------------- driver
@dataclass
class StepInfo:
    """What one :meth:`SessionLoop.step` produced.

    Attributes:
        episode_returns: (e,) returns of the sessions that ended (terminated or truncated).
        episode_lengths: (e,) int64 their lengths.
        ended_slots: (e,) int64 their slots.
        metrics: what ``learner.update`` returned (empty when not learning).
    """

    episode_returns: np.ndarray
    episode_lengths: np.ndarray
    ended_slots: np.ndarray
    metrics: dict[str, float]


class SessionLoop:
    """A world of ``n_sessions`` slots stepped by one learner, one world step at a time.

    Per step: ``obs`` -> ``learner.act`` -> ``world.step`` -> next observations, where slots
    whose session ended use the world's ``terminal_obs`` row (``terminated=True``) and slots
    whose session reached ``max_session_steps`` are truncated (their current observation is
    the final one, ``truncated=True``, and :meth:`World.restart_sessions` starts a new
    session) -> ``learner.update(Transition)``. Returns and lengths are tracked here, per slot.

    Args:
        config: world config.
        n_sessions: concurrent session slots.
        seed: world seed.
        max_session_steps: truncate sessions at this length (``None``: never).
    """

    def __init__(self, config: EnvConfig, *, n_sessions: int = 256, seed: int = 0,
                 max_session_steps: int | None = None) -> None:
        if max_session_steps is not None and max_session_steps < 1:
            raise ValueError(f"max_session_steps must be None or >= 1, got {max_session_steps}")
        self.world = World(config, n_sessions=n_sessions)
        self.world.reset(seed)
        self.n_sessions = n_sessions
        self.max_session_steps = max_session_steps
        self.obs = self.world.recommender_obs()
        self.ep_return = np.zeros(n_sessions)
        self.ep_length = np.zeros(n_sessions, np.int64)
        self.env_steps = 0

    def step(self, learner: Any, *, explore: bool = True, learn: bool = True) -> StepInfo:
        """One world step for every slot (``n_sessions`` env steps)."""
        world, obs = self.world, self.obs
        context = ActContext(world, np.arange(self.n_sessions), world.sessions.user.copy(),
                             world.candidates.item_id.copy())
        slates = np.asarray(learner.act(obs, context, explore=explore), dtype=np.int64)
        slates = slates.reshape(self.n_sessions, -1)
        res = world.step(slates)
        terminated = res.session_ended.copy()
        next_live = world.recommender_obs()
        next_obs = next_live.copy()
        next_obs[terminated] = res.terminal_obs
        self.ep_return += res.reward
        self.ep_length += 1
        truncated = np.zeros(self.n_sessions, bool)
        if self.max_session_steps is not None:
            truncated = ~terminated & (self.ep_length >= self.max_session_steps)
            if truncated.any():
                world.restart_sessions(truncated)
                next_live[truncated] = world.recommender_obs(np.flatnonzero(truncated))
        metrics: dict[str, float] = {}
        if learn:
            metrics = learner.update(Transition(
                obs=obs, action=slates, reward=res.reward.astype(np.float64), next_obs=next_obs,
                terminated=terminated, truncated=truncated, clicked=res.choice.astype(np.int64),
                context=context))
        ended = np.flatnonzero(terminated | truncated)
        info = StepInfo(self.ep_return[ended].copy(), self.ep_length[ended].copy(), ended,
                        metrics)
        self.ep_return[ended] = 0.0
        self.ep_length[ended] = 0
        self.obs = next_live
        self.env_steps += self.n_sessions
        return info


@dataclass
class TrainLog:
    """What :func:`train_on_world` recorded.

    Attributes:
        episode_returns: (E,) returns of every session that ended, in order of ending.
        episode_lengths: (E,) int64.
        episode_end_step: (E,) int64 env step (session-steps so far) at which each ended.
        records: one dict per log interval with SB3 tags: ``time/total_timesteps``,
            ``rollout/ep_rew_mean``, ``rollout/ep_len_mean`` (over sessions ended in the
            interval), ``time/fps`` and the mean of every metric the learner returned.
        env_steps: total env steps (session-steps).
        seconds: wall time.
    """

    episode_returns: np.ndarray
    episode_lengths: np.ndarray
    episode_end_step: np.ndarray
    records: list[dict[str, float]] = field(default_factory=list)
    env_steps: int = 0
    seconds: float = 0.0


def train_on_world(
    learner: Any,
    config: EnvConfig,
    *,
    total_steps: int,
    seed: int = 0,
    n_sessions: int = 256,
    max_session_steps: int | None = None,
    log_interval: int = 50_000,
    callback: Callable[[dict[str, float]], None] | None = None,
) -> TrainLog:
    """Train ``learner`` on a fresh world for ``total_steps`` env steps.

    One world step advances every one of ``n_sessions`` slots, so it counts as ``n_sessions``
    env steps; the loop runs ``ceil(total_steps / n_sessions)`` world steps and calls
    ``learner.update`` once per world step with the whole batch.

    Args:
        learner: any :class:`agents.base.Learner`.
        config: world config.
        total_steps: env steps (session-steps) to train for.
        seed: world seed (the learner has its own).
        n_sessions: concurrent session slots.
        max_session_steps: truncate longer sessions (``None``: never).
        log_interval: env steps between records.
        callback: called with each record.

    Returns:
        The :class:`TrainLog`.
    """
    loop = SessionLoop(config, n_sessions=n_sessions, seed=seed,
                       max_session_steps=max_session_steps)
    n_world_steps = -(-int(total_steps) // n_sessions)
    rets, lens, ends, records = [], [], [], []
    window_r: list[np.ndarray] = []
    window_l: list[np.ndarray] = []
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    t0 = t_log = time.perf_counter()
    steps_at_log = 0
    for i in range(n_world_steps):
        info = loop.step(learner)
        rets.append(info.episode_returns)
        lens.append(info.episode_lengths)
        ends.append(np.full(info.episode_returns.size, loop.env_steps, np.int64))
        window_r.append(info.episode_returns)
        window_l.append(info.episode_lengths)
        for k, v in info.metrics.items():
            sums[k] = sums.get(k, 0.0) + v
            counts[k] = counts.get(k, 0) + 1
        if loop.env_steps - steps_at_log >= log_interval or i == n_world_steps - 1:
            now = time.perf_counter()
            wr, wl = np.concatenate(window_r), np.concatenate(window_l)
            rec = {
                "time/total_timesteps": float(loop.env_steps),
                "rollout/ep_rew_mean": float(wr.mean()) if wr.size else float("nan"),
                "rollout/ep_len_mean": float(wl.mean()) if wl.size else float("nan"),
                "time/fps": (loop.env_steps - steps_at_log) / max(now - t_log, 1e-9),
                **{k: sums[k] / counts[k] for k in sums},
            }
            records.append(rec)
            logger.info("%s", rec)
            if callback is not None:
                callback(rec)
            window_r, window_l, sums, counts = [], [], {}, {}
            t_log, steps_at_log = now, loop.env_steps
    return TrainLog(np.concatenate(rets), np.concatenate(lens), np.concatenate(ends),
                    records, loop.env_steps, time.perf_counter() - t0)


def evaluate_on_world(
    learner: Any,
    config: EnvConfig,
    *,
    seed: int = 12345,
    n_sessions: int = 256,
    episodes_per_slot: int = 1,
    max_session_steps: int | None = None,
    max_world_steps: int = 10_000,
    explore: bool = False,
) -> dict[str, Any]:
    """Mean session return of ``learner`` (greedy by default, no learning) on a fresh world.

    Only the first ``episodes_per_slot`` sessions of every slot count, so long sessions are
    not under-represented (cutting at a fixed time would favour short ones). Slots that have
    not finished them after ``max_world_steps`` world steps are left out (``n_unfinished``).

    Returns:
        ``mean_return``, ``ci95`` (1.96 standard errors), ``mean_length``, ``returns``
        (array), ``n_episodes``, ``n_unfinished``.
    """
    loop = SessionLoop(config, n_sessions=n_sessions, seed=seed,
                       max_session_steps=max_session_steps)
    done = np.zeros(n_sessions, np.int64)
    rets, lens = [], []
    for _ in range(max_world_steps):
        info = loop.step(learner, explore=explore, learn=False)
        keep = done[info.ended_slots] < episodes_per_slot
        rets.append(info.episode_returns[keep])
        lens.append(info.episode_lengths[keep])
        np.add.at(done, info.ended_slots, 1)
        if (done >= episodes_per_slot).all():
            break
    r, ln = np.concatenate(rets), np.concatenate(lens)
    return {
        "mean_return": float(r.mean()) if r.size else float("nan"),
        "ci95": float(1.96 * r.std(ddof=1) / np.sqrt(r.size)) if r.size > 1 else float("nan"),
        "mean_length": float(ln.mean()) if ln.size else float("nan"),
        "returns": r,
        "n_episodes": int(r.size),
        "n_unfinished": int(np.maximum(episodes_per_slot - done, 0).sum()),
    }
