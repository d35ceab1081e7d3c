"""Single-agent Gymnasium views: one agent acts, every other agent is driven for it.

:func:`make_single_agent_env` (``recsim_env.single_agent_env``) exposes one agent of the world
as a ``gymnasium.Env``. Every other agent is driven by a policy from ``others`` (agent id ->
``callable(obs) -> action``, validated like the exposed agent's actions) or by built-in
behaviour:

* other recommenders: uniformly random slates of distinct candidates;
* provider agents (``n_providers > 0``): publish an item of a uniformly random topic with
  probability ``arrival_rate / n_background_providers`` per step (the background rate);
  absent providers are the world's background arrivals;
* user agents (``n_user_agents > 0``): the configured choice model, like every other user.

Episodes:

* ``recommender_i`` and ``user_k``: one episode is one *session* (slot ``i``'s session, or user
  ``k``'s own session). ``terminated`` is True when the world ends the session (budget or
  patience ran out). ``truncated`` is True after ``max_session_steps`` steps; the session is
  then ended at once (``World.restart_sessions``) and the observation returned by that step is
  the last one of the truncated session.
* ``provider_j``: a window of ``max_episode_steps`` world steps, then ``truncated``; never
  ``terminated``.

Reset semantics (the world keeps running across episodes, as in the VecEnv):

* ``reset(seed=int)`` resets the whole world (fresh population and catalog) from that seed;
  so does the very first ``reset()``.
* ``reset()`` without a seed *continues* the world: after a finished episode the next one
  starts from the world as it is (for a recommender, the next session in its slot, which the
  world has already started; for a user agent, the world is stepped, every agent driven, until
  the user's next session begins). Called in the middle of an episode, it first ends the
  current session (counted in the world's session metrics).

  This keeps a ``DummyVecEnv`` of recommender views and
  :class:`recsim_env.vector.RecommenderVecEnv` equal in distribution per session: in both,
  sessions follow one another in a world that never stops.

``step()`` after the end of an episode raises ``ValueError`` (call ``reset()``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from recsim_env.actions import validate_discrete, validate_slate
from recsim_env.aec import (
    sessions_of_users,
    user_action_mask,
    user_action_space,
    user_choice,
    user_observation_space,
    user_observations,
)
from recsim_env.config import EnvConfig
from recsim_env.items import random_slates
from recsim_env.parallel import (
    RENDER_MODES,
    check_count,
    check_render_mode,
    metrics_line,
    provider_action_space,
    recommender_action_space,
    recommender_info,
    render_text,
)
from recsim_env.world import World

Policy = Callable[[np.ndarray], Any]

ROLES = ("recommender", "provider", "user")


# ---------------------------------------------------------------------------- built-ins


def builtin_publish(rng: np.random.Generator, config: EnvConfig, n: int) -> np.ndarray:
    """(n,) int64 built-in provider actions: publish an item of a uniformly random topic
    (action ``topic + 1``) with probability ``arrival_rate / n_background_providers``, else 0."""
    if n == 0:
        return np.zeros(0, np.int64)
    p = min(1.0, config.arrival_rate / config.n_background_providers)
    go = rng.random(n) < p
    topic = rng.integers(config.n_topics, size=n)
    return np.where(go, topic + 1, 0).astype(np.int64)


def parse_agent(agent: str, config: EnvConfig) -> tuple[str, int]:
    """``"recommender_3"`` -> ``("recommender", 3)``, checked against the config.

    Raises:
        ValueError: malformed id, unknown role, or an index the config does not have.
    """
    counts = {"recommender": config.n_recommenders, "provider": config.n_providers,
              "user": config.n_user_agents}
    fields = {"recommender": "n_recommenders", "provider": "n_providers",
              "user": "n_user_agents"}
    role, _, idx = str(agent).rpartition("_")
    if not isinstance(agent, str) or role not in counts or not idx.isdigit():
        raise ValueError(f"agent must be '<role>_<index>' with role in {ROLES}, got {agent!r}")
    i = int(idx)
    if i >= counts[role]:
        raise ValueError(f"agent {agent!r} does not exist: {fields[role]} is {counts[role]} "
                         f"(pass {fields[role]}={i + 1} or more)")
    return role, i


class OtherAgents:
    """Drives every agent but the exposed one: policies from ``others`` or built-ins.

    Args:
        config: world config.
        exposed: the exposed agent id (not driven here).
        others: agent id -> ``callable(obs) -> action``.
    """

    def __init__(self, config: EnvConfig, exposed: str,
                 others: Mapping[str, Policy] | None) -> None:
        self.config = config
        self.rec: dict[int, Policy] = {}
        self.prov: dict[int, Policy] = {}
        self.user: dict[int, Policy] = {}
        if others is None:
            others = {}
        if not isinstance(others, Mapping):
            raise ValueError(f"others must be a mapping of agent id -> policy, got "
                             f"{type(others).__name__}")
        for a, fn in others.items():
            role, i = parse_agent(a, config)
            if a == exposed:
                raise ValueError(f"others must not drive the exposed agent {exposed!r}")
            if not callable(fn):
                raise ValueError(
                    f"the policy of {a!r} must be callable(obs) -> action, got "
                    f"{type(fn).__name__} (wrap an SB3 model as "
                    f"lambda obs: model.predict(obs, deterministic=True)[0])")
            {"recommender": self.rec, "provider": self.prov, "user": self.user}[role][i] = fn
        role, i = parse_agent(exposed, config)
        self.exposed_rec = i if role == "recommender" else -1
        self.exposed_prov = i if role == "provider" else -1
        self.exposed_user = i if role == "user" else -1
        R = config.n_recommenders
        driven = np.ones(R, bool)
        driven[list(self.rec)] = False
        if self.exposed_rec >= 0:
            driven[self.exposed_rec] = False
        self.random_rows = np.flatnonzero(driven)
        self._rec_spaces = {i: recommender_action_space(config) for i in self.rec}
        self._prov_spaces = {j: provider_action_space(config) for j in self.prov}
        self._user_spaces = {k: user_action_space(config) for k in self.user}

    def slates(self, world: World, rng: np.random.Generator) -> np.ndarray:
        """(n_recommenders, slate_size) slates of the driven recommenders (the exposed row is
        left at 0 for the caller to fill)."""
        cfg = self.config
        out = np.zeros((cfg.n_recommenders, cfg.slate_size), np.int64)
        if self.random_rows.size:
            out[self.random_rows] = random_slates(rng, self.random_rows.size, cfg.n_candidates,
                                                  cfg.slate_size)
        if self.rec:
            obs = world.recommender_obs(np.fromiter(self.rec, np.int64))
            for row, (i, fn) in enumerate(self.rec.items()):
                out[i] = validate_slate(f"recommender_{i}", fn(obs[row]), self._rec_spaces[i],
                                        cfg)
        return out

    def publish(self, world: World, rng: np.random.Generator) -> np.ndarray:
        """(n_providers,) provider actions (the exposed row is left for the caller)."""
        P = self.config.n_providers
        out = builtin_publish(rng, self.config, P)
        if self.prov:
            obs = world.provider_obs()
            for j, fn in self.prov.items():
                out[j] = validate_discrete(f"provider_{j}", fn(obs[j]), self._prov_spaces[j])
        if self.exposed_prov >= 0:
            out[self.exposed_prov] = 0
        return out

    def overrides(self, world: World, slates: np.ndarray) -> np.ndarray | None:
        """(n_sessions,) ``choice_override`` for the driven user agents in session (-2 for the
        choice model), or ``None`` when no user policy applies."""
        if not self.user:
            return None
        slot = sessions_of_users(world, self.config.n_user_agents)
        ks = [k for k in self.user if slot[k] >= 0]
        if not ks:
            return None
        users = np.array(ks, np.int64)
        sl = slot[users]
        obs = user_observations(world, users, sl, slates[sl], np.ones(len(ks), bool))
        out = np.full(world.n_sessions, -2, np.int64)
        for row, k in enumerate(ks):
            a = validate_discrete(f"user_{k}", self.user[k](obs[row]), self._user_spaces[k])
            out[sl[row]] = user_choice(a, slates[sl[row]])
        return out


# ---------------------------------------------------------------------------- views
class SingleAgentView(gymnasium.Env):
    """Base of the views: the world, the driven agents, seeding and reset bookkeeping.

    Args:
        agent: the exposed agent id.
        config: world configuration.
        others: agent id -> policy for agents not driven by built-in behaviour.
        max_session_steps: session time limit (recommender and user views).
        max_episode_steps: episode length of the provider view.
        render_mode: ``None``, ``"ansi"`` or ``"human"``.
    """

    metadata = {"render_modes": list(RENDER_MODES), "render_fps": 4}

    def __init__(self, agent: str, config: EnvConfig, others: Mapping[str, Policy] | None = None,
                 max_session_steps: int = 500, max_episode_steps: int = 1000,
                 render_mode: str | None = None) -> None:
        if not isinstance(config, EnvConfig):
            raise ValueError(f"config must be an EnvConfig, got {type(config).__name__}")
        self.max_session_steps = check_count("max_session_steps", max_session_steps)
        self.max_episode_steps = check_count("max_episode_steps", max_episode_steps)
        self.render_mode = check_render_mode(render_mode)
        self.role, self.index = parse_agent(agent, config)
        self.agent = agent
        self.config = config
        self.world = World(config)
        self.layout = self.world.layout
        self.others = OtherAgents(config, agent, others)
        self._started = False
        self._done = True
        self._ep_len = 0
        self._ep_ret = 0.0

    # ------------------------------------------------------------------ helpers
    def _reset_world_if_needed(self, seed: int | None) -> bool:
        """Gymnasium seeding, then a full world reset when seeded or never started."""
        super().reset(seed=seed)
        if seed is None and self._started:
            return False
        world_rng, self._rng = self.np_random.spawn(2)
        self.world.reset(world_rng)
        self._started = True
        self._done = True
        return True

    def _check_running(self) -> None:
        if self._done:
            raise ValueError("step() called on a finished episode; call reset() first")

    def _slot_mask(self, slot: int) -> np.ndarray:
        mask = np.zeros(self.world.n_sessions, bool)
        mask[slot] = True
        return mask

    def _finish(self, reward: float, terminated: bool, truncated: bool,
                info: dict[str, Any]) -> None:
        self._ep_len += 1
        self._ep_ret += reward
        if terminated or truncated:
            self._done = True
            info["episode"] = {"r": self._ep_ret, "l": self._ep_len}

    def metrics(self) -> dict[str, float]:
        """Run-level world metrics since the last world reset (see ``World.metrics``)."""
        return self.world.metrics()

    def render(self) -> str | None:
        """Text summary: returned (``ansi``) or printed (``human``)."""
        if self.render_mode is None:
            return None
        return render_text(self.render_mode,
                           metrics_line(self.metrics(), prefix=f"{self.agent} ")
                           + f" episode_steps={self._ep_len} episode_return={self._ep_ret:.2f}")

    def close(self) -> None:
        """Nothing to release."""


class RecommenderView(SingleAgentView):
    """``recommender_i`` as a Gymnasium env: one episode is one session of slot ``i``.

    Observation: the recommender observation (:class:`recsim_env.ObsLayout`); action: a slate
    (``Discrete(n_candidates)`` for slates of one, else ``MultiDiscrete``); reward: the
    recommender reward of its session. ``info`` holds ``clicks``, ``watch_time``,
    ``impressions``, ``cold_impressions``, ``cold_clicks``, ``user``; at the end of an episode
    also ``episode = {"r", "l"}``.
    """

    def __init__(self, agent: str = "recommender_0", config: EnvConfig | None = None,
                 **kwargs: Any) -> None:
        super().__init__(agent, config, **kwargs)
        if self.role != "recommender":
            raise ValueError(f"RecommenderView exposes a recommender, got {agent!r}")
        self.observation_space = self.layout.space()
        self.action_space = recommender_action_space(self.config)
        self._row = np.array([self.index])

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Start the next session of slot ``i`` (see the module docstring)."""
        if not self._reset_world_if_needed(seed) and not self._done:
            self.world.restart_sessions(self._slot_mask(self.index))
        self._done = False
        self._ep_len, self._ep_ret = 0, 0.0
        obs = self.world.recommender_obs(self._row)[0]
        return obs, {"user": int(self.world.sessions.user[self.index])}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Show a slate to the current user of slot ``i``; one world step."""
        self._check_running()
        i, cfg, world = self.index, self.config, self.world
        slate = validate_slate(self.agent, action, self.action_space, cfg)
        slates = self.others.slates(world, self._rng)
        slates[i] = slate
        publish = self.others.publish(world, self._rng)
        res = world.step(slates, publish, self.others.overrides(world, slates))
        reward = float(res.reward[i])
        terminated = bool(res.session_ended[i])
        truncated = False
        if terminated:
            obs = res.terminal_obs[int(np.count_nonzero(res.session_ended[:i]))].copy()
        else:
            obs = world.recommender_obs(self._row)[0]
            truncated = bool(world.time_limited(self.max_session_steps, self._slot_mask(i))[i])
            if truncated:
                world.restart_sessions(self._slot_mask(i))
        info = recommender_info(res, i)
        self._finish(reward, terminated, truncated, info)
        return obs, reward, terminated, truncated, info


class ProviderView(SingleAgentView):
    """``provider_j`` as a Gymnasium env: an episode is ``max_episode_steps`` world steps.

    Observation, action and reward as in the parallel env; ``info["published"]``.
    """

    def __init__(self, agent: str = "provider_0", config: EnvConfig | None = None,
                 **kwargs: Any) -> None:
        super().__init__(agent, config, **kwargs)
        if self.role != "provider":
            raise ValueError(f"ProviderView exposes a provider, got {agent!r}")
        self.observation_space = spaces.Box(-np.inf, np.inf, (self.world.provider_obs_dim,),
                                            np.float32)
        self.action_space = provider_action_space(self.config)

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Start the next window of world steps (see the module docstring)."""
        self._reset_world_if_needed(seed)
        self._done = False
        self._ep_len, self._ep_ret = 0, 0.0
        return self.world.provider_obs()[self.index], {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Publish (or not) and advance the world one step."""
        self._check_running()
        j, world = self.index, self.world
        a = validate_discrete(self.agent, action, self.action_space)
        slates = self.others.slates(world, self._rng)
        publish = self.others.publish(world, self._rng)
        publish[j] = a
        res = world.step(slates, publish, self.others.overrides(world, slates))
        reward = float(res.provider_reward[j])
        truncated = self._ep_len + 1 >= self.max_episode_steps
        info = {"published": bool(res.provider_published[j])}
        self._finish(reward, False, truncated, info)
        return world.provider_obs()[j], reward, False, truncated, info


class UserView(SingleAgentView):
    """``user_k`` as a Gymnasium env: one episode is one session of user ``k``.

    Observation: :func:`recsim_env.aec.user_observations` with the slate its recommender
    (driven) chose for this step; action: ``Discrete(slate_size + 1)`` (``slate_size`` = no
    click; a click on an empty position is no click); reward: the user's utility.
    ``info["action_mask"]`` marks clickable positions. Between sessions the world is stepped
    with every agent driven until user ``k`` is back: give user agents small cohorts
    (``n_users`` close to ``n_recommenders``) or that wait can be long.

    Args:
        max_wait_steps: world steps to wait for the user's next session before giving up.
    """

    def __init__(self, agent: str = "user_0", config: EnvConfig | None = None,
                 max_wait_steps: int = 100_000, **kwargs: Any) -> None:
        super().__init__(agent, config, **kwargs)
        if self.role != "user":
            raise ValueError(f"UserView exposes a user agent, got {agent!r}")
        self.observation_space = user_observation_space(self.config, self.layout.item_dim)
        self.action_space = user_action_space(self.config)
        self.max_wait_steps = check_count("max_wait_steps", max_wait_steps)
        self._slot = -1
        self._slates: np.ndarray | None = None

    def _find_slot(self) -> int:
        hit = np.flatnonzero(self.world.sessions.user == self.index)
        return int(hit[0]) if hit.size else -1

    def _wait_for_session(self) -> None:
        world = self.world
        for _ in range(self.max_wait_steps):
            self._slot = self._find_slot()
            if self._slot >= 0:
                return
            slates = self.others.slates(world, self._rng)
            world.step(slates, self.others.publish(world, self._rng),
                       self.others.overrides(world, slates))
        raise RuntimeError(f"user {self.index} did not start a session within "
                           f"{self.max_wait_steps} world steps; use smaller cohorts "
                           f"(n_users closer to n_recommenders)")

    def _observe(self) -> tuple[np.ndarray, dict[str, Any]]:
        k, slot = self.index, self._slot
        if slot >= 0:
            self._slates = self.others.slates(self.world, self._rng)
            slate = self._slates[slot]
            obs = user_observations(self.world, np.array([k]), np.array([slot]),
                                    self._slates[[slot]], np.array([True]))[0]
            return obs, {"action_mask": user_action_mask(slate, self.config.slate_size)}
        obs = user_observations(self.world, np.array([k]), np.array([-1]),
                                np.zeros((1, self.config.slate_size), np.int64),
                                np.array([False]))[0]
        return obs, {"action_mask": user_action_mask(None, self.config.slate_size)}

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Wait (stepping the world) for user ``k``'s next session and show its first slate."""
        if not self._reset_world_if_needed(seed) and not self._done:
            slot = self._find_slot()
            if slot >= 0:
                self.world.restart_sessions(self._slot_mask(slot))
        self._wait_for_session()
        self._done = False
        self._ep_len, self._ep_ret = 0, 0.0
        return self._observe()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Choose a slate position (or no click); one world step."""
        self._check_running()
        world, slot = self.world, self._slot
        a = validate_discrete(self.agent, action, self.action_space)
        slates = self._slates
        publish = self.others.publish(world, self._rng)
        override = self.others.overrides(world, slates)
        if override is None:
            override = np.full(world.n_sessions, -2, np.int64)
        override[slot] = user_choice(a, slates[slot])
        res = world.step(slates, publish, override)
        reward = float(res.user_utility[slot])
        terminated = bool(res.session_ended[slot])
        truncated = not terminated and bool(
            world.time_limited(self.max_session_steps, self._slot_mask(slot))[slot])
        if truncated:
            world.restart_sessions(self._slot_mask(slot))
        self._slot = -1 if terminated or truncated else slot
        obs, info = self._observe()
        info.update(choice=int(res.choice[slot]), utility=reward)
        self._finish(reward, terminated, truncated, info)
        return obs, reward, terminated, truncated, info


_VIEWS = {"recommender": RecommenderView, "provider": ProviderView, "user": UserView}


def make_single_agent_env(
    agent: str = "recommender_0",
    config: EnvConfig | None = None,
    *,
    others: Mapping[str, Policy] | None = None,
    max_session_steps: int = 500,
    max_episode_steps: int = 1000,
    render_mode: str | None = None,
    **kwargs: Any,
) -> SingleAgentView:
    """The view class for ``agent``'s role over a resolved ``config``."""
    if not isinstance(config, EnvConfig):
        raise ValueError(f"config must be an EnvConfig, got {type(config).__name__}")
    role, _ = parse_agent(agent, config)
    return _VIEWS[role](agent, config, others=others, max_session_steps=max_session_steps,
                        max_episode_steps=max_episode_steps, render_mode=render_mode, **kwargs)
