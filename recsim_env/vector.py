"""A native Stable-Baselines3 ``VecEnv`` over many recommender sessions of one batched world.

``RecommenderVecEnv(num_envs)`` runs ``World(config, n_sessions=num_envs)``: env ``i`` is the
recommender of session slot ``i`` (the population is scaled to ``config.cohort_size`` users per
slot). There are no per-env Python objects: one world step serves every env, observations,
rewards and dones are arrays.

Episodes are sessions, exactly as in :class:`recsim_env.views.RecommenderView`, so a
``DummyVecEnv`` of recommender views has the same per-session dynamics in distribution:

* a session the world ends (budget or patience) is *terminated*; the world has already
  started the next session in that slot, whose first observation is returned;
* a session reaching ``max_session_steps`` steps is *truncated*: it is observed (the terminal
  observation), ended with ``World.restart_sessions`` and the slot re-observed.

For each done env ``infos[i]`` is its own dict holding ``terminal_observation``,
``TimeLimit.truncated`` (True only for time-limit ends) and ``episode = {"r", "l"}`` (so SB3
logs ``rollout/ep_rew_mean`` without a monitor; ``VecMonitor`` recomputes and overwrites the
same numbers). Every info holds ``TimeLimit.truncated``, as ``DummyVecEnv`` does. The infos of
envs that are not done are one shared *read-only* mapping ``{"TimeLimit.truncated": False}``
(``types.MappingProxyType``): SB3 and its wrappers only read them and write only into done
envs' infos, and with thousands of envs a fresh dict per env per step costs more than a tenth
of the step. Writing into one raises ``TypeError``; copy it first (``dict(info)``).

Provider agents of the config, if any, publish at the built-in rate; user agents are left to
the choice model. ``get_attr``/``set_attr``/``env_method`` act on the shared env: every index
sees the same value (a method is called once and its result repeated per index).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvStepReturn

from recsim_env import resolve_config
from recsim_env.actions import validate_slates
from recsim_env.config import EnvConfig
from recsim_env.parallel import check_count, recommender_action_space
from recsim_env.views import builtin_publish
from recsim_env.world import World

_NOT_DONE_INFO: Mapping[str, Any] = MappingProxyType({"TimeLimit.truncated": False})


class RecommenderVecEnv(VecEnv):
    """``num_envs`` concurrent recommender sessions of one batched world, as an SB3 ``VecEnv``.

    Args:
        num_envs: concurrent sessions (envs).
        config: a full config; or build one from ``preset`` (default ``"default"``).
        preset: one of :data:`recsim_env.PRESETS`.
        max_session_steps: time limit of a session (truncation).
        **overrides: config fields to change.
    """

    render_mode: str | None = None

    def __init__(self, num_envs: int, config: EnvConfig | None = None, *,
                 preset: str | None = None, max_session_steps: int = 500,
                 **overrides: Any) -> None:
        num_envs = check_count("num_envs", num_envs)
        self.max_session_steps = check_count("max_session_steps", max_session_steps)
        self.config = resolve_config(config, preset=preset, **overrides)
        # the population is scaled to cohort_size users per env: check that it fits
        self.config.check_memory(n_sessions=num_envs, name="num_envs")
        self.render_mode = None
        self.world = World(self.config, n_sessions=num_envs)
        self.layout = self.world.layout
        obs_space = self.layout.space()
        super().__init__(num_envs, obs_space, recommender_action_space(self.config))
        self._seeder = np.random.default_rng()
        self._rng = np.random.default_rng()
        self._started = False
        self._slates: np.ndarray | None = None
        self._ep_ret = np.zeros(self.num_envs)
        self._ep_len = np.zeros(self.num_envs, np.int64)

    # ------------------------------------------------------------------ seeding / reset
    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Seed the world for the next :meth:`reset` (all envs share it; env ``i`` is listed
        with ``seed + i`` as SB3 does)."""
        if seed is None:
            seed = int(self._seeder.integers(np.iinfo(np.uint32).max))
        self._seeds = [int(seed) + i for i in range(self.num_envs)]
        return self._seeds

    def reset(self) -> np.ndarray:
        """Start a new episode in every env.

        With a seed set by :meth:`seed` (or before the first reset) the whole world is reset;
        otherwise every current session is ended and a new one started (the world continues,
        as in the single-agent view's ``reset()``).

        Returns:
            (num_envs, obs_size) float32.
        """
        seed = self._seeds[0]
        if seed is not None or not self._started:
            if seed is not None:
                self._seeder = np.random.default_rng(seed)
            world_rng, self._rng = self._seeder.spawn(2)
            self.world.reset(world_rng)
            self._started = True
        else:
            self.world.restart_sessions(np.ones(self.num_envs, bool))
        self._reset_seeds()
        self._reset_options()
        self._ep_ret[:] = 0.0
        self._ep_len[:] = 0
        self._slates = None
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return self.world.recommender_obs()

    # ------------------------------------------------------------------ step
    def step_async(self, actions: np.ndarray) -> None:
        """Validate the whole batch (nothing changes on error) and store it."""
        if not self._started:
            raise ValueError("step() called before reset(); call reset() first")
        self._slates = validate_slates(actions, self.num_envs, self.action_space, self.config)

    def step_wait(self) -> VecEnvStepReturn:
        """One world step for every env, with auto-reset of ended sessions."""
        if self._slates is None:
            raise ValueError("step_wait() called without step_async(actions)")
        world, n = self.world, self.num_envs
        publish = builtin_publish(self._rng, self.config, self.config.n_providers)
        res = world.step(self._slates, publish)
        self._slates = None
        reward = res.reward
        self._ep_ret += reward
        self._ep_len += 1
        ended = res.session_ended
        trunc = world.time_limited(self.max_session_steps, ~ended)
        obs = world.recommender_obs()
        # envs that are not done share one read-only info; done envs get their own dicts
        infos: list[Mapping[str, Any]] = [_NOT_DONE_INFO] * n
        dones = ended | trunc
        if dones.any():
            for i in np.flatnonzero(dones).tolist():
                infos[i] = {"TimeLimit.truncated": False}
            for j, i in enumerate(np.flatnonzero(ended).tolist()):
                infos[i]["terminal_observation"] = res.terminal_obs[j]
            if trunc.any():
                rows = np.flatnonzero(trunc)
                final = obs[rows]
                world.restart_sessions(trunc)
                obs[rows] = world.recommender_obs(rows)
                for j, i in enumerate(rows.tolist()):
                    infos[i]["terminal_observation"] = final[j]
                    infos[i]["TimeLimit.truncated"] = True
            done_idx = np.flatnonzero(dones)
            for i, r, length in zip(done_idx.tolist(), self._ep_ret[done_idx].tolist(),
                                    self._ep_len[done_idx].tolist()):
                infos[i]["episode"] = {"r": r, "l": length}
            self._ep_ret[dones] = 0.0
            self._ep_len[dones] = 0
        return obs, reward.astype(np.float32), dones, infos

    # ------------------------------------------------------------------ VecEnv plumbing
    def _indices(self, indices: VecEnvIndices) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        if isinstance(indices, (int, np.integer)):
            return [int(indices)]
        return [int(i) for i in indices]

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The attribute of the shared env, once per index."""
        value = getattr(self, attr_name)
        return [value for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set an attribute of the shared env (all envs share it: indices must cover all)."""
        if sorted(set(self._indices(indices))) != list(range(self.num_envs)):
            raise ValueError("set_attr on a subset of envs is not supported: every env of a "
                             "RecommenderVecEnv shares one world")
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None,
                   **method_kwargs: Any) -> list[Any]:
        """Call a method of the shared env once; its result is repeated per index."""
        result = getattr(self, method_name)(*method_args, **method_kwargs)
        return [result for _ in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        """No env is wrapped (there are no per-env objects)."""
        return [False for _ in self._indices(indices)]

    def metrics(self) -> dict[str, float]:
        """Run-level world metrics since the last world reset (see ``World.metrics``)."""
        return self.world.metrics()

    def close(self) -> None:
        """Nothing to release."""
