"""Plumbing shared by our Q-learners (TabularQ, LinearQ, DQN, SlateQ).

* :class:`QLearner`: the part every one of them has: config-derived sizes, the shared
  hyperparameters (``gamma``, ``lr``, the epsilon schedule), the learner's own generators, the
  counters, :attr:`~QLearner.exploration_rate`, epsilon-greedy slate acting (:meth:`QLearner.act`
  over a per-learner greedy slate) and the common part of :meth:`~QLearner.state_dict` /
  :meth:`~QLearner.load_state_dict` (kind, counters, generator states around the learner's own
  model state).
* :class:`ReplayQLearner`: adds what the deep learners (DQN, SlateQ) share: the replay buffer,
  online and target networks with Adam, the store-then-train-when-warm :meth:`update`
  skeleton, the bootstrapped TD target, the clipped gradient step with periodic Polyak target
  updates, and the networks/optimizer/replay part of the state.
* :func:`check_q_hyperparameters` and :func:`check_gamma_lr`: hyperparameter validation.
* :func:`polyak_update` and :func:`clone_state_dict`: target updates and network snapshots.

Each learner keeps its own model, greedy slate, learning rule and loss in its own module; this
module only holds what is the same for them, with the same operations in the same order (the
learners behave bit for bit as before it existed).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from agents.base import ActContext, Transition
from agents.replay import (
    ReplayBuffer,
    check_obs,
    linear_schedule,
    obs_layout,
    rng_state,
    set_rng_state,
    top_k_slates,
)
from recsim_env.config import EnvConfig
from recsim_env.items import random_slates

__all__ = [
    "QLearner",
    "ReplayQLearner",
    "check_gamma_lr",
    "check_q_hyperparameters",
    "clone_state_dict",
    "polyak_update",
    "polyak_update_params",
]


# ---------------------------------------------------------------------------------- helpers
def _check_gamma(gamma: float) -> None:
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")


def check_gamma_lr(gamma: float, lr: float) -> None:
    """Validate the hyperparameters TabularQ and LinearQ share: ``gamma`` in [0, 1] and the
    step size ``lr`` in (0, 1] (``ValueError`` naming the field)."""
    _check_gamma(gamma)
    if not 0.0 < lr <= 1.0:
        raise ValueError(f"lr must be in (0, 1], got {lr}")


def check_q_hyperparameters(gamma: float, lr: float, batch_size: int, gradient_steps: int,
                            target_update_interval: int, tau: float) -> None:
    """Validate the hyperparameters DQN and SlateQ share (``ValueError`` naming the field)."""
    _check_gamma(gamma)
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    for name, v in (("batch_size", batch_size), ("gradient_steps", gradient_steps),
                    ("target_update_interval", target_update_interval)):
        if v < 1:
            raise ValueError(f"{name} must be >= 1, got {v}")
    if not 0.0 < tau <= 1.0:
        raise ValueError(f"tau must be in (0, 1], got {tau}")


def polyak_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """``target <- tau * online + (1 - tau) * target`` (a hard copy when ``tau == 1``)."""
    polyak_update_params(list(target.parameters()), list(online.parameters()), tau)


def polyak_update_params(target: list[torch.Tensor], online: list[torch.Tensor], tau: float
                         ) -> None:
    """:func:`polyak_update` on parameter lists (a learner keeps its lists, so that a step does
    not walk the modules again)."""
    with torch.no_grad():
        if tau == 1.0:
            torch._foreach_copy_(target, online)
        else:
            torch._foreach_lerp_(target, online, tau)


def clip_grad_norm(params: list[torch.Tensor], max_norm: float) -> None:
    """``torch.nn.utils.clip_grad_norm_(params, max_norm)`` for CPU float32 parameters, in
    place: the same operations in the same order (the same bits), without the per-call
    grouping of tensors by device and dtype."""
    with torch.no_grad():
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads, 2.0)), 2.0)
        torch._foreach_mul_(grads, torch.clamp(float(max_norm) / (total + 1e-6), max=1.0))


def clone_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached copies of a module's state dict (a snapshot the module cannot change)."""
    return {k: v.detach().clone() for k, v in sd.items()}


# ---------------------------------------------------------------------------------- learners
class QLearner:
    """What every Q-learner of ours shares (see the module docstring).

    Subclasses set :attr:`kind` (the ``"kind"`` entry of the state), implement ``q_values``
    (or override :meth:`_greedy_slates`), :meth:`update`, :meth:`_model_state` and
    :meth:`_load_model_state`.

    Args:
        config: the world's config (observation layout, slate size).
        seed: seed of the learner's own numpy generator (and torch generator, if any).
        gamma: discount.
        lr: learning rate / step size (validated by the subclass).
        exploration_initial_eps, exploration_final_eps, exploration_steps: linear epsilon
            schedule over transitions (rows).
        torch_generator: also keep a torch generator seeded with ``seed`` (``torch_rng``; saved
            with the state).
    """

    privileged: ClassVar[bool] = False
    kind: ClassVar[str] = ""
    #: break ties between equal Q-values at random while exploring (else by the lower index)
    random_tie_break: ClassVar[bool] = False

    def __init__(self, config: EnvConfig, *, seed: int, gamma: float, lr: float,
                 exploration_initial_eps: float = 1.0, exploration_final_eps: float = 0.05,
                 exploration_steps: int = 20_000, torch_generator: bool = False) -> None:
        self.layout = obs_layout(config)
        self.slate_size = config.slate_size
        self.n_candidates = config.n_candidates
        self.gamma, self.lr = float(gamma), float(lr)
        self.eps_start, self.eps_end = float(exploration_initial_eps), float(exploration_final_eps)
        self.exploration_steps = int(exploration_steps)
        self.rng = np.random.default_rng(seed)
        self.torch_rng = torch.Generator().manual_seed(int(seed)) if torch_generator else None
        self.num_timesteps = 0
        self.n_updates = 0

    @property
    def exploration_rate(self) -> float:
        """Current epsilon."""
        return linear_schedule(self.eps_start, self.eps_end, self.exploration_steps,
                               self.num_timesteps)

    # ------------------------------------------------------------------ acting
    def _greedy_slates(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        """The greedy slates: the top-``slate_size`` candidates by the subclass's
        ``q_values(obs)`` ((n, n_candidates)), ties broken at random while exploring when
        :attr:`random_tie_break` is set. SlateQ, which has no item-wise Q, overrides this."""
        rng = self.rng if explore and self.random_tie_break else None
        return top_k_slates(self.q_values(obs), self.slate_size, rng)

    def _net_obs(self, obs: np.ndarray, context: ActContext | None, explore: bool
                 ) -> np.ndarray:
        """What the model scores: the observation itself (a learner with its own memory
        adds to it)."""
        return obs

    def act(self, obs: np.ndarray, context: ActContext | None = None, *,
            explore: bool = True) -> np.ndarray:
        """The greedy slate (top-``slate_size`` candidates by Q unless the learner says
        otherwise); epsilon-random slates when exploring.

        Returns:
            (n, slate_size) int64.
        """
        check_obs(obs, self.layout)
        slates = self._greedy_slates(self._net_obs(obs, context, explore), explore)
        if explore:
            rand = self.rng.random(obs.shape[0]) < self.exploration_rate
            slates[rand] = random_slates(self.rng, int(rand.sum()), self.n_candidates,
                                         self.slate_size)
        return slates

    # ------------------------------------------------------------------ learning
    def update(self, batch: Transition) -> dict[str, float]:
        """Learn from a batch of transitions; returns metrics with SB3's tags."""
        raise NotImplementedError

    def _count_update(self, n_rows: int, loss: float, q_mean: float) -> dict[str, float]:
        """Count one on-policy update of ``n_rows`` transitions; its metrics (SB3 tags)."""
        self.num_timesteps += n_rows
        self.n_updates += 1
        return {
            "train/loss": loss,
            "train/q_mean": q_mean,
            "train/n_updates": float(self.n_updates),
            "rollout/exploration_rate": self.exploration_rate,
        }

    # ------------------------------------------------------------------ state
    def _model_state(self) -> dict[str, Any]:
        """What the learner has learned (weights, table, ...), as saveable values."""
        raise NotImplementedError

    def _load_model_state(self, state: dict[str, Any]) -> None:
        """Check and restore :meth:`_model_state`'s entries of ``state``."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """``kind``, the learner's model state (see ``_model_state``), counters and generator
        states, as tensors, numbers, strings and dicts (``torch.load(weights_only=True)``
        reads it back)."""
        state = {
            "kind": self.kind,
            **self._model_state(),
            "num_timesteps": self.num_timesteps,
            "n_updates": self.n_updates,
            "rng": rng_state(self.rng),
        }
        if self.torch_rng is not None:
            state["torch_rng"] = self.torch_rng.get_state()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` (same constructor arguments)."""
        self._load_model_state(state)
        self.num_timesteps = int(state["num_timesteps"])
        self.n_updates = int(state["n_updates"])
        set_rng_state(self.rng, state["rng"])
        if self.torch_rng is not None:
            self.torch_rng.set_state(state["torch_rng"])


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReplayHParams:
    """Hyperparameters of the replay Q-learners (:class:`agents.dqn.DQN`,
    :class:`agents.slateq.SlateQ`), their defaults written once.

    Attributes:
        gamma: discount.
        lr: Adam's learning rate.
        batch_size: replayed transitions per gradient step.
        buffer_size: replay capacity (rows).
        learning_starts: transitions stored before the first gradient step.
        gradient_steps: gradient steps per ``update`` call (one call per world step in the
            rollout loop, so ``gradient_steps * batch_size / n_sessions`` replayed rows per env
            step).
        target_update_interval: gradient steps between target updates.
        tau: Polyak coefficient of a target update (1.0 = hard copy).
        exploration_initial_eps, exploration_final_eps, exploration_steps: linear epsilon
            schedule over transitions (rows).
        max_grad_norm: gradient-norm clip.
        hidden: hidden layer sizes of the scoring network.
        cross_dim: rank of the network's user x item cross term.
        reward_scale: rewards are multiplied by this before learning (Q is in scaled units;
            acting is unaffected).
        eval_ema: 0, or the Polyak coefficient of a moving average of the online network's
            weights, updated after every gradient step, that acts whenever the learner does
            not explore (evaluation); exploring and learning use the online network. The
            average of the last ~``1 / eval_ema`` steps is a steadier greedy policy than the
            last step's weights.
    """

    gamma: float = 0.99
    lr: float = 1e-3
    batch_size: int = 256
    buffer_size: int = 50_000
    learning_starts: int = 1_000
    gradient_steps: int = 1
    target_update_interval: int = 1
    tau: float = 0.01
    exploration_initial_eps: float = 1.0
    exploration_final_eps: float = 0.05
    exploration_steps: int = 50_000
    max_grad_norm: float = 10.0
    hidden: Sequence[int] = (64, 64)
    cross_dim: int = 32
    reward_scale: float = 1.0
    eval_ema: float = 0.0


class ReplayQLearner(QLearner):
    """A :class:`QLearner` trained from a replay buffer with online and target networks.

    Subclasses build their online network from ``self.torch_rng`` and ``self.hp`` and hand
    it to :meth:`_set_networks`, and implement :meth:`_train_step` (one gradient step on a
    replayed batch, ending with :meth:`_gradient_step`).

    Args:
        config: the world's config.
        seed: seed of the learner's own generators.
        **hparams: fields of :class:`ReplayHParams` (an unknown name raises ``TypeError``
            naming it).
    """

    def __init__(self, config: EnvConfig, *, seed: int, **hparams: Any) -> None:
        hp = self.hp = ReplayHParams(**hparams)
        check_q_hyperparameters(hp.gamma, hp.lr, hp.batch_size, hp.gradient_steps,
                                hp.target_update_interval, hp.tau)
        if not 0.0 <= hp.eval_ema <= 1.0:
            raise ValueError(f"eval_ema must be in [0, 1] (0: off), got {hp.eval_ema}")
        super().__init__(config, seed=seed, gamma=hp.gamma, lr=hp.lr,
                         exploration_initial_eps=hp.exploration_initial_eps,
                         exploration_final_eps=hp.exploration_final_eps,
                         exploration_steps=hp.exploration_steps, torch_generator=True)
        self.tau = float(hp.tau)
        self.batch_size, self.learning_starts = int(hp.batch_size), int(hp.learning_starts)
        self.gradient_steps = int(hp.gradient_steps)
        self.target_update_interval = int(hp.target_update_interval)
        self.max_grad_norm = float(hp.max_grad_norm)
        self.reward_scale = float(hp.reward_scale)
        self.replay = ReplayBuffer(hp.buffer_size, self.layout.size, self.slate_size)

    def _set_networks(self, q_net: nn.Module) -> None:
        """Use ``q_net`` as the online network: a frozen copy becomes the target, Adam trains
        it."""
        self.q_net = q_net
        self.q_target = copy.deepcopy(q_net).requires_grad_(False)
        # parameter lists kept for the gradient step (loading a state copies into the same
        # tensors, so the lists stay valid)
        self._online_params = list(self.q_net.parameters())
        self._target_params = list(self.q_target.parameters())
        # the averaged network that acts when not exploring (eval_ema), else None
        self.q_eval = copy.deepcopy(q_net).requires_grad_(False) if self.hp.eval_ema else None
        self._eval_params = list(self.q_eval.parameters()) if self.q_eval is not None else []
        # fused: one kernel for all parameters (about twice as fast on CPU)
        self.optimizer = torch.optim.Adam(self.q_net.parameters(), lr=self.lr, fused=True)

    def _net_dims(self) -> tuple[int, int]:
        """(user, item) feature sizes of the networks' input: the observation's (a learner
        with its own memory adds to them)."""
        return self.layout.user_dim, self.layout.item_dim

    def _split(self, obs: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, obs_dim) -> user (n, user_dim) and candidates (n, C, item_dim), float32."""
        return self.layout.split(torch.as_tensor(obs, dtype=torch.float32))

    def act(self, obs: np.ndarray, context: ActContext | None = None, *,
            explore: bool = True) -> np.ndarray:
        """:meth:`QLearner.act`; when not exploring with ``eval_ema``, the averaged network
        stands in for the online one."""
        if explore or self.q_eval is None:
            return super().act(obs, context, explore=explore)
        online, self.q_net = self.q_net, self.q_eval
        try:
            return super().act(obs, context, explore=False)
        finally:
            self.q_net = online

    # ------------------------------------------------------------------ learning
    def update(self, batch: Transition) -> dict[str, float]:
        """Store the batch, then run ``gradient_steps`` gradient steps once warm."""
        self.replay.add(batch.obs, batch.action, batch.reward, batch.next_obs,
                        batch.terminated, batch.clicked)
        self.num_timesteps += batch.obs.shape[0]
        out = {"rollout/exploration_rate": self.exploration_rate}
        if len(self.replay) < max(self.learning_starts, 1):
            return out
        stats = [self._train_step(self.replay.sample(self.batch_size, self.rng, reuse=True))
                 for _ in range(self.gradient_steps)]
        out.update({key: float(np.mean([s[key] for s in stats])) for key in stats[0]})
        out["train/n_updates"] = float(self.n_updates)
        return out

    def _train_step(self, b: dict[str, np.ndarray]) -> dict[str, float]:
        """One gradient step on a replayed batch; its metrics (averaged over the steps of an
        :meth:`update`). The batch's arrays are the replay's reused ones: the next sample
        overwrites them."""
        raise NotImplementedError

    def _td_target(self, b: dict[str, np.ndarray], v_next: torch.Tensor) -> torch.Tensor:
        """``reward_scale * r + gamma * (1 - terminated) * v_next`` for a replayed batch
        (truncated rows bootstrap: truncation is not stored)."""
        not_done = 1.0 - torch.from_numpy(b["terminated"].astype(np.float32))
        reward = torch.from_numpy(b["reward"]) * self.reward_scale
        return reward + self.gamma * not_done * v_next

    def _gradient_step(self, loss: torch.Tensor | None = None) -> None:
        """Adam step with gradient-norm clipping on ``loss``'s gradients (by autograd), or,
        without ``loss``, on the ``.grad`` the subclass has just set; every
        ``target_update_interval`` steps a Polyak update of the target network."""
        if loss is not None:
            for p in self._online_params:  # Optimizer.zero_grad(set_to_none=True), minus hooks
                p.grad = None
            loss.backward()
        clip_grad_norm(self._online_params, self.max_grad_norm)
        self.optimizer.step()
        self.n_updates += 1
        if self.n_updates % self.target_update_interval == 0:
            polyak_update_params(self._target_params, self._online_params, self.tau)
        if self.q_eval is not None:
            polyak_update_params(self._eval_params, self._online_params, self.hp.eval_ema)

    # ------------------------------------------------------------------ state
    def _model_state(self) -> dict[str, Any]:
        """Networks, optimizer and replay contents."""
        state = {
            "q_net": clone_state_dict(self.q_net.state_dict()),
            "q_target": clone_state_dict(self.q_target.state_dict()),
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "replay": self.replay.state_dict(),
        }
        if self.q_eval is not None:
            state["q_eval"] = clone_state_dict(self.q_eval.state_dict())
        return state

    def _load_model_state(self, state: dict[str, Any]) -> None:
        if (self.q_eval is not None) != ("q_eval" in state):
            raise ValueError(f"eval_ema: the state {'has' if 'q_eval' in state else 'lacks'} "
                             f"an averaged network, this learner has eval_ema="
                             f"{self.hp.eval_ema}")
        self.q_net.load_state_dict(state["q_net"])
        self.q_target.load_state_dict(state["q_target"])
        if self.q_eval is not None:
            self.q_eval.load_state_dict(state["q_eval"])
        self.optimizer.load_state_dict(state["optimizer"])
        if "replay" in state:
            self.replay.load_state_dict(state["replay"])
        else:  # a light checkpoint (agents.runner.RunConfig.light_checkpoints): refill from empty
            self.replay.size = self.replay.pos = 0
