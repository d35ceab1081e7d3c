"""Replay buffer and the small pieces every Q-learner of ours shares (their shared class
plumbing is :mod:`agents.qbase`).

* :class:`ReplayBuffer`: a preallocated numpy ring buffer of recommender transitions
  (``obs, action, reward, next_obs, terminated, clicked``), added and sampled in batches.
* :func:`obs_layout`: the observation layout of a config, without building a world.
* :func:`credited_item`: which candidate a slate-level transition is credited to.
* :func:`top_k_slates`: batched slate construction (random slates:
  :func:`recsim_env.items.random_slates`).
* :func:`linear_schedule`: the epsilon schedule.
* :func:`rng_state` / :func:`set_rng_state`: a ``np.random.Generator`` state as plain data (so
  that ``torch.load(weights_only=True)`` can read it back).

``torch.load(weights_only=True)`` refuses numpy arrays, so learners store arrays as tensors
(whole checkpoints go through :func:`agents.checkpoint.to_saveable`, the project's one saver)
and turn them back with :func:`as_array`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from recsim_env.config import EnvConfig
from recsim_env.world import ObsLayout

__all__ = [
    "ReplayBuffer",
    "check_obs",
    "as_array",
    "credited_item",
    "linear_schedule",
    "obs_layout",
    "rng_state",
    "set_rng_state",
    "top_k_slates",
]


def obs_layout(config: EnvConfig) -> ObsLayout:
    """The recommender observation layout the world builds for ``config``.

    Builds only the (cheap) content encoder to learn its feature size; a MiniLM encoder loads
    nothing until it encodes.
    """
    return ObsLayout.from_config(config)


def check_obs(obs: np.ndarray, layout: ObsLayout) -> None:
    """Raise a ``ValueError`` unless ``obs`` is a (n, layout.size) batch."""
    shape = np.shape(obs)
    if len(shape) != 2 or shape[1] != layout.size:
        raise ValueError(f"obs must have shape (n, {layout.size}) for this config, got {shape}")


def credited_item(action: np.ndarray, clicked: np.ndarray) -> np.ndarray:
    """The candidate a slate transition is credited to: the clicked one, else slot 0.

    Item-wise Q-learners (tabular, linear, DQN) learn ``Q(s, i)`` for single items. For slates of
    more than one item the reward comes from the one item the user clicked, so that item is the
    action that "happened"; without a click nothing was consumed and the transition is
    credited to the item in the first slot (the learner's best guess, shown most prominently).

    Args:
        action: (n, slate_size) or (n,) int64 candidate indices.
        clicked: (n,) int64 clicked slate position or -1.

    Returns:
        (n,) int64 candidate index.
    """
    action = np.asarray(action)
    if action.ndim == 1:
        return action.astype(np.int64)
    pos = np.where(clicked >= 0, clicked, 0)
    return action[np.arange(action.shape[0]), pos].astype(np.int64)


def top_k_slates(scores: np.ndarray, slate_size: int, rng: np.random.Generator | None = None
                 ) -> np.ndarray:
    """The ``slate_size`` best-scoring candidates per row, best first: (n, slate_size) int64.

    Args:
        scores: (n, n_candidates) float.
        slate_size: k.
        rng: when given, ties are broken uniformly at random (one uniform per score);
            otherwise by the lower index.
    """
    if rng is None:
        order = np.argsort(-scores, axis=1, kind="stable")
    else:
        order = np.lexsort((rng.random(scores.shape), -scores), axis=-1)
    return order[:, :slate_size].astype(np.int64)


def linear_schedule(start: float, end: float, duration: int, t: int) -> float:
    """``start`` moved linearly to ``end`` over ``duration`` steps, then held."""
    if duration <= 0:
        return float(end)
    frac = min(max(t / duration, 0.0), 1.0)
    return float(start + frac * (end - start))


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """The generator's state as plain Python data (strings and ints, nested dicts)."""
    return _plain(rng.bit_generator.state)


def set_rng_state(rng: np.random.Generator, state: dict[str, Any]) -> None:
    """Restore a state from :func:`rng_state` (the bit generator types must match)."""
    if state["bit_generator"] != type(rng.bit_generator).__name__:
        raise ValueError(f"rng state is for {state['bit_generator']}, the generator is "
                         f"{type(rng.bit_generator).__name__}")
    rng.bit_generator.state = state


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x.copy())
    return x


def as_array(x: Any) -> np.ndarray:
    """A saved tensor (or array) of a learner's state -> a fresh numpy array."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy().copy()
    return np.array(x, copy=True)


class ReplayBuffer:
    """Preallocated ring buffer of transitions, added and sampled in batches.

    Stores per row: ``obs (obs_dim,) float32``, ``action (slate_size,) int64``, ``reward``
    float32, ``next_obs (obs_dim,) float32`` (the terminal observation where a session ended),
    ``terminated`` bool and ``clicked`` int64 (slate position or -1). Truncation is not stored:
    a truncated transition bootstraps like any non-terminal one.

    Args:
        capacity: rows kept; the oldest are overwritten first.
        obs_dim: observation length.
        slate_size: actions per row.
    """

    _FIELDS = ("obs", "action", "reward", "next_obs", "terminated", "clicked")

    def __init__(self, capacity: int, obs_dim: int, slate_size: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.action = np.zeros((capacity, slate_size), np.int64)
        self.reward = np.zeros(capacity, np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), np.float32)
        self.terminated = np.zeros(capacity, bool)
        self.clicked = np.zeros(capacity, np.int64)
        self.pos = 0
        self.size = 0
        self._batch: dict[str, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.size

    def add(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, next_obs: np.ndarray,
            terminated: np.ndarray, clicked: np.ndarray) -> None:
        """Append a batch of ``n`` rows (leading axis = row); ``action`` may be (n,)."""
        n = obs.shape[0]
        if n > self.capacity:  # only the newest rows fit
            keep = slice(n - self.capacity, n)
            obs, action, reward, next_obs = obs[keep], action[keep], reward[keep], next_obs[keep]
            terminated, clicked = terminated[keep], clicked[keep]
            n = self.capacity
        values = (obs, np.asarray(action).reshape(n, -1), reward, next_obs, terminated, clicked)
        # at most two contiguous slices (the second when the write wraps around): plain slice
        # copies are several times faster than fancy-indexed writes of large rows
        first = min(n, self.capacity - self.pos)
        for name, v in zip(self._FIELDS, values):
            buf = getattr(self, name)
            buf[self.pos: self.pos + first] = v[:first]
            if first < n:
                buf[: n - first] = v[first:]
        self.pos = int((self.pos + n) % self.capacity)
        self.size = int(min(self.size + n, self.capacity))

    def sample(self, batch_size: int, rng: np.random.Generator, *, reuse: bool = False
               ) -> dict[str, np.ndarray]:
        """``batch_size`` rows drawn uniformly with replacement (one ``rng.integers`` call).

        Args:
            batch_size: rows to draw.
            rng: the generator of the draw.
            reuse: write the rows into arrays the buffer keeps and reuses (the next
                ``reuse=True`` sample of the same size overwrites them), sparing a training
                loop the allocation of a fresh batch every step. The same rows either way.
        """
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = rng.integers(self.size, size=batch_size)
        if not reuse:
            return {name: getattr(self, name)[idx] for name in self._FIELDS}
        if self._batch is None or self._batch["reward"].shape[0] != batch_size:
            self._batch = {name: np.empty((batch_size,) + getattr(self, name).shape[1:],
                                          getattr(self, name).dtype) for name in self._FIELDS}
        for name, out in self._batch.items():
            # mode="clip" (the indices are in range): np.take writes straight into ``out``
            np.take(getattr(self, name), idx, axis=0, out=out, mode="clip")
        return self._batch

    def state_dict(self) -> dict[str, Any]:
        """Filled rows (in storage order) and the write position, as tensors and ints."""
        out: dict[str, Any] = {"pos": self.pos, "size": self.size, "capacity": self.capacity}
        for name in self._FIELDS:
            out[name] = torch.from_numpy(getattr(self, name)[: self.size].copy())
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` (the capacity must match)."""
        if int(state["capacity"]) != self.capacity:
            raise ValueError(f"replay capacity {state['capacity']} in the state differs from "
                             f"this buffer's {self.capacity}")
        size = int(state["size"])
        for name in self._FIELDS:
            getattr(self, name)[:size] = as_array(state[name])
        self.size, self.pos = size, int(state["pos"])
