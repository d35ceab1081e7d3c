"""A step-at-a-time view of the one rollout loop for learner tests (any learner object, a
fresh world)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.rollout import Rollout, RolloutStep, assign_rows
from recsim_env import World


@dataclass
class Step:
    """One step of :class:`SessionLoop`: the learner's metrics and the ended sessions."""

    raw: RolloutStep
    metrics: dict[str, float]

    @property
    def episode_lengths(self) -> np.ndarray:
        return self.raw.episode_length[self.raw.ended]

    @property
    def episode_returns(self) -> np.ndarray:
        return self.raw.episode_return[self.raw.ended]


class SessionLoop:
    """``World(cfg, n_sessions)`` reset to ``seed``, stepped by whichever learner is given to
    :meth:`step` through :class:`agents.rollout.Rollout`."""

    def __init__(self, cfg: Any, *, n_sessions: int, seed: int,
                 max_session_steps: int | None = None) -> None:
        self.world = World(cfg, n_sessions=n_sessions)
        self.world.reset(seed)
        self.max_session_steps = max_session_steps
        self._rollout: Rollout | None = None
        self._learner: Any = None
        self._obs = self.world.recommender_obs()

    @property
    def obs(self) -> np.ndarray:
        return self._obs if self._rollout is None else self._rollout.obs

    def step(self, learner: Any, *, explore: bool = True, learn: bool = True) -> Step:
        if learner is not self._learner:
            t, started = (self._rollout.t, self._rollout.started_at) if self._rollout else (0, None)
            self._rollout = Rollout(self.world, assign_rows(learner, self.world.n_sessions),
                                    np.random.default_rng(0),
                                    max_session_steps=self.max_session_steps)
            self._rollout.t = t
            if started is not None:
                self._rollout.started_at = started
            self._learner = learner
        out = self._rollout.step(explore=explore, learn=learn)
        return Step(out, next(iter(out.metrics.values()), {}))
