"""Stable-Baselines3 models as agents.

Two ways to use SB3 here:

* **Single-agent training** on a Gymnasium view or on the native VecEnv (the usual SB3 way):
  :func:`make_model` builds PPO / A2C / DQN with TensorBoard logging in a run directory and
  ``model.learn(...)`` does the rest.
* **Multi-agent training** in one world with :class:`SB3Learner`: an SB3 model wrapped in the
  project's :class:`agents.base.Learner` protocol (NOTES.md, pattern 2: a model built on a
  spaces-only env, our loop fills its rollout or replay buffer and calls ``train()``). Map one
  learner to every agent of a role for parameter sharing, or one learner per agent for
  independent models; the runner trains them all simultaneously.

Checkpoints of an :class:`SB3Learner` hold the policy and optimizer tensors and the counters
(loaded with ``weights_only=True``); the rollout/replay buffer is not saved, so a resumed SB3
learner refills it (our own learners resume bit for bit; SB3 learners resume their weights).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.utils import obs_as_tensor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from agents.base import ActContext, Transition
from agents.sb3_policies import default_policy
from recsim_env.items import random_slates
from recsim_env.slates import decode_no_repeat, no_repeat_space

ALGOS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "a2c": A2C, "dqn": DQN}


def algo_class(name: str) -> type[BaseAlgorithm]:
    """The SB3 class called ``name`` (``ppo``, ``a2c``, ``dqn``)."""
    key = name.lower()
    if key not in ALGOS:
        raise ValueError(f"algo must be one of {sorted(ALGOS)}, got {name!r}")
    return ALGOS[key]


def make_model(algo: str, env: gym.Env | VecEnv, *, seed: int = 0,
               tensorboard_log: str | Path | None = None, policy: Any = None,
               **kwargs: Any) -> BaseAlgorithm:
    """An SB3 model on CPU (``DQN`` needs a ``Discrete`` action space: slate size 1).

    ``policy`` defaults to :func:`agents.sb3_policies.default_policy`: the candidate-scoring
    policies on a recommender's observation space, ``MlpPolicy`` on any other.
    """
    cls = algo_class(algo)
    if cls is DQN and not isinstance(env.action_space, spaces.Discrete):
        raise ValueError(f"DQN needs a Discrete action space (slate_size=1), got "
                         f"{env.action_space}")
    if policy is None:
        policy = default_policy(algo.lower(), env.observation_space)
    return cls(policy, env, seed=seed, device="cpu",
               tensorboard_log=None if tensorboard_log is None else str(tensorboard_log),
               verbose=0, **kwargs)


class _SpacesOnly(gym.Env):
    """An env that only carries spaces, for building SB3 models driven by our own loop."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        self.observation_space = observation_space
        self.action_space = action_space

    def reset(self, *, seed=None, options=None):  # pragma: no cover - never stepped
        raise RuntimeError("spaces-only env")

    def step(self, action):  # pragma: no cover - never stepped
        raise RuntimeError("spaces-only env")


SLATE_ENCODINGS = ("positions", "no_repeat")


class SB3Learner:
    """An SB3 PPO, A2C or DQN model acting for ``n_rows`` agents (or sessions) at once.

    Args:
        algo: ``ppo``, ``a2c`` or ``dqn``.
        observation_space, action_space: one agent's spaces.
        n_rows: how many agents/sessions this learner acts for in each step (fixed).
        total_steps: planned env steps (drives SB3's learning-rate / exploration schedules).
        seed: seeds SB3 (torch) and this adapter's own generator.
        slate_encoding: for a slate space ``MultiDiscrete([c] * k)``, ``k > 1``:
            ``positions`` (the model's action space is the slate space itself; its
            independent per-position heads can repeat an item, which leaves that position
            empty) or ``no_repeat`` (the model acts in :func:`no_repeat_space` and its codes
            are decoded into slates of distinct items, :func:`decode_no_repeat`).
        **kwargs: passed to the SB3 constructor (``n_steps``, ``learning_rate``, ...).
    """

    privileged = False

    def __init__(self, algo: str, observation_space: spaces.Space, action_space: spaces.Space,
                 n_rows: int, *, total_steps: int = 100_000, seed: int = 0,
                 slate_encoding: str = "positions", **kwargs: Any) -> None:
        self.algo = algo.lower()
        if slate_encoding not in SLATE_ENCODINGS:
            raise ValueError(f"slate_encoding must be one of {SLATE_ENCODINGS}, got "
                             f"{slate_encoding!r}")
        self._n_candidates: int | None = None  # set when codes are decoded into slates
        if slate_encoding == "no_repeat":
            action_space = no_repeat_space(action_space)
            self._n_candidates = int(action_space.nvec[0])
        self.slate_encoding = slate_encoding
        venv = DummyVecEnv([lambda: _SpacesOnly(observation_space, action_space)] * n_rows)
        self.model = make_model(self.algo, venv, seed=seed, **kwargs)
        self.model.set_logger(Logger(folder=None, output_formats=[]))
        self.n_rows = n_rows
        self.total_steps = int(total_steps)
        self.rng = np.random.default_rng(seed)
        self._pending: tuple | None = None
        self._episode_starts = np.ones(n_rows, bool)
        self.on_policy = isinstance(self.model, OnPolicyAlgorithm)
        if self.on_policy:
            self.model.rollout_buffer.reset()

    # ------------------------------------------------------------------ acting
    def act(self, obs: np.ndarray, context: ActContext | None = None, *,
            explore: bool = True) -> np.ndarray:
        """Batched actions; in exploration mode PPO/A2C sample from the policy and DQN is
        epsilon-greedy with the current exploration rate."""
        policy = self.model.policy
        policy.set_training_mode(False)
        with torch.no_grad():
            obs_t = obs_as_tensor(np.asarray(obs, np.float32), policy.device)
            if self.on_policy:
                if explore:
                    actions, values, log_probs = policy(obs_t)
                    self._pending = (np.array(obs, np.float32), actions.numpy(), values,
                                     log_probs)
                    return self._slates(actions.numpy())
                return self._slates(policy._predict(obs_t, deterministic=True).numpy())
            greedy = policy.q_net(obs_t).argmax(dim=1).numpy()
        if explore:
            eps = self.model.exploration_rate
            rand = self.rng.random(greedy.shape[0]) < eps
            greedy = np.where(rand, self.rng.integers(self.model.action_space.n,
                                                      size=greedy.shape[0]), greedy)
        return greedy

    def _slates(self, actions: np.ndarray) -> np.ndarray:
        """The model's actions as the world's (no-repeat codes decoded into slates)."""
        if self._n_candidates is None:
            return actions
        return decode_no_repeat(actions, self._n_candidates)

    # ------------------------------------------------------------------ learning
    def _train_metrics(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.model.logger.name_to_value.items()
                if k.startswith("train/")}

    def update(self, batch: Transition) -> dict[str, float]:
        """Store the batch; train when SB3 would (rollout full, or every ``train_freq``)."""
        m = self.model
        n = batch.reward.shape[0]
        if n != self.n_rows:
            raise ValueError(f"SB3Learner built for {self.n_rows} rows got a batch of {n}")
        m.num_timesteps += n
        m._update_current_progress_remaining(m.num_timesteps, self.total_steps)
        done = batch.terminated | batch.truncated
        out: dict[str, float] = {}
        if self.on_policy:
            if self._pending is None:
                raise RuntimeError("update() without a preceding act(explore=True)")
            obs, actions, values, log_probs = self._pending
            rewards = batch.reward.astype(np.float32).copy()
            if batch.truncated.any():  # bootstrap time-limit ends, as SB3 does
                idx = np.flatnonzero(batch.truncated)
                with torch.no_grad():
                    v = m.policy.predict_values(obs_as_tensor(batch.next_obs[idx], m.device))
                rewards[idx] += m.gamma * v.numpy().reshape(-1)
            act = actions.reshape(n, -1) if isinstance(m.action_space, spaces.Discrete) else actions
            m.rollout_buffer.add(obs, act, rewards, self._episode_starts, values, log_probs)
            self._episode_starts = done.copy()
            self._pending = None
            if m.rollout_buffer.full:
                with torch.no_grad():
                    last = m.policy.predict_values(obs_as_tensor(batch.next_obs, m.device))
                m.rollout_buffer.compute_returns_and_advantage(last_values=last, dones=done)
                m.train()
                m.rollout_buffer.reset()
                out = self._train_metrics()
        else:
            infos = [{"TimeLimit.truncated": bool(t)} for t in batch.truncated]
            m.replay_buffer.add(batch.obs, batch.next_obs, batch.action.reshape(n, -1),
                                batch.reward, done, infos)
            m._on_step()
            if (m.num_timesteps > m.learning_starts
                    and (m.num_timesteps // n) % max(m.train_freq.frequency, 1) == 0):
                gs = m.gradient_steps if m.gradient_steps > 0 else n
                m.train(gradient_steps=gs, batch_size=m.batch_size)
                out = self._train_metrics()
            out["rollout/exploration_rate"] = float(m.exploration_rate)
        return out

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Policy and optimizer tensors and counters (buffers are not saved)."""
        m = self.model
        return {
            "policy": m.policy.state_dict(),
            "optimizer": m.policy.optimizer.state_dict(),
            "num_timesteps": int(m.num_timesteps),
            "n_updates": int(getattr(m, "_n_updates", 0)),
            "n_calls": int(getattr(m, "_n_calls", 0)),
            "exploration_rate": float(getattr(m, "exploration_rate", 0.0)),
            "episode_starts": self._episode_starts.copy(),
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore weights, optimizer and counters; buffers start empty."""
        m = self.model
        m.policy.load_state_dict(state["policy"])
        m.policy.optimizer.load_state_dict(state["optimizer"])
        m.num_timesteps = int(state["num_timesteps"])
        m._n_updates = int(state["n_updates"])
        if hasattr(m, "_n_calls"):
            m._n_calls = int(state["n_calls"])
        if hasattr(m, "exploration_rate"):
            m.exploration_rate = float(state["exploration_rate"])
        self._episode_starts = np.array(state["episode_starts"], bool)
        self.rng.bit_generator.state = state["rng"]
        if self.on_policy:
            m.rollout_buffer.reset()
        self._pending = None


class MemorySB3Learner(SB3Learner):
    """An :class:`SB3Learner` for recommenders whose observations are augmented with a
    :class:`agents.memory.PlatformMemory` (the platform's record of its users and, with
    ``item_memory``, of its items), the same inputs :class:`agents.memory.MemoryDQN` gets. The
    SB3 model is built on the augmented space, which carries its layout, so the
    candidate-scoring policies score every candidate with its memory features.

    Args:
        algo: ``ppo`` or ``a2c`` (the memory is per row; ``dqn`` acts on one position).
        config: the world's config.
        n_rows: sessions it acts for at once.
        **kwargs: :data:`agents.memory.MEMORY_OPTIONS` (the memory's), then
            :class:`SB3Learner`'s (``total_steps``, ``seed``, ``slate_encoding``, SB3 options).
    """

    def __init__(self, algo: str, config: Any, n_rows: int, **kwargs: Any) -> None:
        from agents.memory import PlatformMemory, split_memory_options
        from recsim_env.parallel import recommender_action_space

        if algo.lower() not in ("ppo", "a2c"):
            raise ValueError(f"memory: SB3 learners with a memory are ppo or a2c, got {algo!r}")
        memory, kwargs = split_memory_options(kwargs)
        self.platform_memory = PlatformMemory(config, kind=f"{algo} with memory", **memory)
        super().__init__(algo, self.platform_memory.net_layout.space(),
                         recommender_action_space(config), n_rows, **kwargs)

    def act(self, obs: np.ndarray, context: ActContext | None = None, *,
            explore: bool = True) -> np.ndarray:
        """:meth:`SB3Learner.act` on the observations augmented with the memory."""
        return super().act(self.platform_memory.net_obs(obs, context, learning=explore),
                           context, explore=explore)

    def observe(self, batch: Transition) -> None:
        """Record a step without learning (the rollout loop calls this in evaluation)."""
        self.platform_memory.record(batch, learning=False)

    def update(self, batch: Transition) -> dict[str, float]:
        """Record the step in the memory, then :meth:`SB3Learner.update` on the augmented
        observations."""
        obs, next_obs = self.platform_memory.record(batch, learning=True)
        return super().update(batch._replace(obs=obs, next_obs=next_obs))

    def state_dict(self) -> dict[str, Any]:
        """:meth:`SB3Learner.state_dict` plus the training world's memory."""
        return {**super().state_dict(), **self.platform_memory.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.platform_memory.load_state_dict(state)


class TopKSB3DQN:
    """SB3's DQN acting on slates: the top-k candidates by its per-position Q-values.

    Wraps an :class:`agents.sb3.SB3Learner` built on the ``Discrete(n_candidates)`` space (the
    observation does not depend on the slate size). Acting: top ``slate_size`` positions by
    Q, an epsilon-random slate with SB3's current exploration rate while exploring. Learning:
    the transition's action is the clicked position, or the first when nothing was clicked
    (as :func:`agents.replay.credited_item`), stored in SB3's replay buffer.
    """

    privileged = False

    def __init__(self, config: Any, n_rows: int, *, seed: int, total_steps: int,
                 **kwargs: Any) -> None:
        self.slate_size = config.slate_size
        self.n_candidates = config.n_candidates
        from agents.factory import role_spaces

        one = dataclasses.replace(config, slate_size=1)
        obs_space, act_space = role_spaces(one, "recommender")
        self.inner = SB3Learner("dqn", obs_space, act_space, n_rows, total_steps=total_steps,
                                seed=seed, **kwargs)
        self.model = self.inner.model  # consensus and logging find the SB3 model here
        self.rng = np.random.default_rng([seed, 7])

    def act(self, obs: np.ndarray, context: Any = None, *, explore: bool = True) -> np.ndarray:
        """(n, obs_dim) -> (n, slate_size) int64."""
        policy = self.model.policy
        policy.set_training_mode(False)
        with torch.no_grad():
            q = policy.q_net(torch.as_tensor(np.asarray(obs, np.float32))).numpy()
        slates = np.argsort(-q, axis=1, kind="stable")[:, : self.slate_size]
        if explore:
            rand = self.rng.random(q.shape[0]) < self.model.exploration_rate
            if rand.any():
                slates[rand] = random_slates(self.rng, int(rand.sum()), self.n_candidates,
                                             self.slate_size)
        return slates.astype(np.int64)

    def update(self, batch: Any) -> dict[str, float]:
        """Credit the clicked position (or the first) and hand the batch to SB3."""
        n = batch.reward.shape[0]
        action = np.asarray(batch.action, np.int64).reshape(n, -1)
        pos = np.maximum(np.asarray(batch.clicked, np.int64), 0)
        credited = action[np.arange(n), pos][:, None]
        return self.inner.update(batch._replace(action=credited))

    def state_dict(self) -> dict[str, Any]:
        """The SB3 learner's state and this adapter's generator."""
        return {"inner": self.inner.state_dict(), "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.inner.load_state_dict(state["inner"])
        self.rng.bit_generator.state = state["rng"]
