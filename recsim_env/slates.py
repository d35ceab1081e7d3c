"""Slates without repeats: an action encoding for policies with one head per slate position.

A recommender's slate space is ``MultiDiscrete([c] * k)``: ``k`` positions, each naming one of
``c`` candidates. A policy with independent per-position heads (SB3's PPO and A2C on
``MultiDiscrete``) can name one candidate twice, and the world shows a repeated item once, so
the position is wasted. The no-repeat encoding ``MultiDiscrete([c, c - 1, ..., c - k + 1])``
has position ``j`` pick the rank of its item among the candidates positions ``0 .. j - 1``
left; every code decodes to a slate of ``k`` distinct items and every such slate has exactly
one code.

* :func:`no_repeat_space`, :func:`decode_no_repeat`, :func:`encode_no_repeat`: the encoding;
* :class:`NoRepeatSlates`: a Gymnasium ``ActionWrapper`` for a recommender view;
* :class:`NoRepeatSlatesVec`: an SB3 ``VecEnvWrapper`` for :class:`RecommenderVecEnv`;
* ``agents.sb3.SB3Learner(slate_encoding="no_repeat")`` does the same inside the runner.

::

    env = NoRepeatSlatesVec(RecommenderVecEnv(64, preset="default"))
    model = PPO("MlpPolicy", env)  # acts in MultiDiscrete([10, 9, 8]); slates never repeat
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

from recsim_env.actions import read_array

__all__ = ["NoRepeatSlates", "NoRepeatSlatesVec", "decode_no_repeat", "encode_no_repeat",
           "no_repeat_space"]


def no_repeat_space(action_space: spaces.Space) -> spaces.MultiDiscrete:
    """The no-repeat encoding of a slate space ``MultiDiscrete([c] * k)``, ``1 < k <= c``:
    ``MultiDiscrete([c, c - 1, ..., c - k + 1])``, where position ``j`` picks among the
    candidates positions ``0 .. j - 1`` have not taken (see :func:`decode_no_repeat`)."""
    nvec = np.asarray(getattr(action_space, "nvec", []))
    if (not isinstance(action_space, spaces.MultiDiscrete) or nvec.ndim != 1
            or not 1 < nvec.size <= nvec[0] or not np.all(nvec == nvec[0])):
        raise ValueError(f"no-repeat slates need a slate space MultiDiscrete([c] * k) with "
                         f"1 < k <= c, got {action_space}")
    c, k = int(nvec[0]), nvec.size
    return spaces.MultiDiscrete(np.arange(c, c - k, -1, dtype=np.int64))


def decode_no_repeat(codes: np.ndarray, n_candidates: int) -> np.ndarray:
    """Slates (n, k) of distinct candidate indices from no-repeat codes (n, k).

    ``codes[:, j]`` in ``[0, c - j)`` is the rank, in candidate order, of the chosen one among
    those not yet in the slate. Every code gives a slate without repeats and every such slate
    has exactly one code (:func:`encode_no_repeat`), so a policy over codes can never waste a
    position on a repeat, as independent per-position heads over ``MultiDiscrete([c] * k)`` do.
    """
    raw = read_array(codes, "no-repeat codes",
                     f"whole numbers of shape (n, k), column j in [0, {n_candidates} - j)")
    if raw.ndim != 2 or not (np.issubdtype(raw.dtype, np.integer)
                             or (np.issubdtype(raw.dtype, np.floating)
                                 and np.all(raw == np.round(raw)))):
        raise ValueError(f"no-repeat codes must be whole numbers of shape (n, k), got "
                         f"{raw.dtype} of shape {raw.shape}")
    codes = raw.astype(np.int64)
    n, k = codes.shape
    limits = n_candidates - np.arange(k)
    if np.any(codes < 0) or np.any(codes >= limits):
        bad = np.argwhere((codes < 0) | (codes >= limits))[0]
        raise ValueError(f"no-repeat code {codes[tuple(bad)]} at row {bad[0]}, position "
                         f"{bad[1]} is outside [0, {limits[bad[1]]})")
    free = np.ones((n, n_candidates), bool)
    rows = np.arange(n)
    out = np.empty((n, k), np.int64)
    for j in range(k):  # slate positions; all rows at once
        rank = np.cumsum(free, axis=1)
        out[:, j] = np.argmax(free & (rank == codes[:, j:j + 1] + 1), axis=1)
        free[rows, out[:, j]] = False
    return out


def encode_no_repeat(slates: np.ndarray, n_candidates: int) -> np.ndarray:
    """Inverse of :func:`decode_no_repeat` for slates without repeats."""
    slates = np.asarray(slates, dtype=np.int64)
    n, k = slates.shape
    free = np.ones((n, n_candidates), bool)
    rows = np.arange(n)
    out = np.empty((n, k), np.int64)
    for j in range(k):
        s = slates[:, j]
        if not free[rows, s].all():
            raise ValueError("encode_no_repeat: a slate repeats a candidate")
        out[:, j] = np.cumsum(free, axis=1)[rows, s] - 1
        free[rows, s] = False
    return out


class NoRepeatSlates(gymnasium.ActionWrapper):
    """A recommender view acting in :func:`no_repeat_space` (codes decoded into slates)."""

    def __init__(self, env: gymnasium.Env) -> None:
        super().__init__(env)
        self.action_space = no_repeat_space(env.action_space)
        self._c = int(self.action_space.nvec[0])

    def action(self, action: Any) -> np.ndarray:
        code = read_array(action, "the no-repeat slate wrapper", self.action_space)
        if code.shape != self.action_space.shape:
            raise ValueError(f"no-repeat code {action!r} has shape {code.shape}; expected an "
                             f"element of {self.action_space}")
        return decode_no_repeat(code[None], self._c)[0]


class NoRepeatSlatesVec(VecEnvWrapper):
    """A :class:`recsim_env.vector.RecommenderVecEnv` acting in :func:`no_repeat_space`:
    ``step_async`` decodes every env's code into its slate (row ``i`` of an error is env
    ``i``) and hands the slates to the wrapped VecEnv."""

    def __init__(self, venv: VecEnv) -> None:
        space = no_repeat_space(venv.action_space)
        super().__init__(venv, action_space=space)
        self._c = int(space.nvec[0])

    def step_async(self, actions: np.ndarray) -> None:
        codes = read_array(actions, "the no-repeat slate VecEnv wrapper", self.action_space)
        if codes.shape != (self.num_envs,) + self.action_space.shape:
            raise ValueError(f"no-repeat codes have shape {codes.shape}; expected "
                             f"({self.num_envs}, {self.action_space.shape[0]}): one element "
                             f"of {self.action_space} per env")
        self.venv.step_async(decode_no_repeat(codes, self._c))

    def reset(self) -> Any:
        return self.venv.reset()

    def step_wait(self) -> VecEnvStepReturn:
        return self.venv.step_wait()
