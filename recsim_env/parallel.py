"""PettingZoo ParallelEnv over the batched world: recommenders and providers act at once.

Agents, in ``possible_agents`` order: ``recommender_0 .. recommender_{R-1}`` then
``provider_0 .. provider_{P-1}``. The world runs continuously: a recommender serves one
session after another from its cohort; ``infos[agent]["session"]`` marks the step a session
ends. Agents are never terminated; every agent is truncated after ``max_cycles`` steps.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from recsim_env.actions import validate_discrete, validate_slate
from recsim_env.config import EnvConfig
from recsim_env.world import World

__all__ = ["ENV_NAME", "RENDER_MODES", "RecSimParallelEnv", "check_count", "check_render_mode",
           "metrics_line", "provider_action_space", "recommender_action_space", "render_text",
           "validate_discrete", "validate_slate"]

ENV_NAME = "recsim_v0"


def recommender_action_space(cfg: EnvConfig) -> spaces.Space:
    """``Discrete(n_candidates)`` for slates of one, else ``MultiDiscrete([n_candidates] * k)``."""
    if cfg.slate_size == 1:
        return spaces.Discrete(cfg.n_candidates)
    return spaces.MultiDiscrete(np.full(cfg.slate_size, cfg.n_candidates, dtype=np.int64))


def provider_action_space(cfg: EnvConfig) -> spaces.Discrete:
    """``Discrete(n_topics + 1)``: 0 publishes nothing, ``k`` publishes an item of topic k-1."""
    return spaces.Discrete(cfg.n_topics + 1)


def recommender_infos(res: Any, slots: slice, with_session: bool = True
                      ) -> list[dict[str, Any]]:
    """The per-step infos of recommender ``slots`` from a ``World.step`` result (every face
    reports the same keys): ``clicks``, ``watch_time``, ``impressions``, ``cold_impressions``,
    ``cold_clicks``, ``user``, and, ``with_session``, ``session = {"length", "return"}`` on the
    step a session ends. Each array is read once, as Python numbers."""
    choice, watch = res.choice[slots].tolist(), res.watch_time[slots].tolist()
    imp, cold_imp = res.impressions[slots].tolist(), res.cold_impressions[slots].tolist()
    cold_clicks, user = res.cold_clicks[slots].tolist(), res.session_user[slots].tolist()
    infos = [{"clicks": int(c >= 0), "watch_time": w, "impressions": m, "cold_impressions": ci,
              "cold_clicks": int(cc), "user": u}
             for c, w, m, ci, cc, u in zip(choice, watch, imp, cold_imp, cold_clicks, user,
                                               strict=True)]
    if with_session:
        start = slots.start or 0
        for i, ended in enumerate(res.session_ended[slots].tolist()):
            if ended:
                infos[i]["session"] = {"length": int(res.session_length[start + i]),
                                       "return": float(res.session_return[start + i])}
    return infos


def recommender_info(res: Any, i: int) -> dict[str, Any]:
    """The per-step info of recommender slot ``i`` (:func:`recommender_infos` without
    ``session``)."""
    return recommender_infos(res, slice(i, i + 1), with_session=False)[0]


def fill_step_outputs(res, recommenders: list[str], providers: list[str],
                      rewards: dict[str, float], infos: dict[str, dict]) -> None:
    """Write recommenders' and providers' rewards and infos of a world step into the dicts
    (recommenders: :func:`recommender_infos`; providers: ``published``)."""
    rewards.update(zip(recommenders, res.reward[:len(recommenders)].tolist(), strict=True))
    infos.update(zip(recommenders, recommender_infos(res, slice(0, len(recommenders))),
                     strict=True))
    if providers:
        rewards.update(zip(providers, res.provider_reward.tolist(), strict=True))
        infos.update((a, {"published": p}) for a, p in
                     zip(providers, res.provider_published.tolist(), strict=True))


def metrics_line(m: dict[str, float], prefix: str = "") -> str:
    """One-line text summary of world metrics (the ``ansi`` render of every face)."""
    return (f"{prefix}t={int(m['steps'])} ctr={m['ctr']:.3f} cold_ctr={m['cold_start_ctr']:.3f} "
            f"watch/step={m['watch_time']:.2f} sessions={int(m['sessions'])} "
            f"catalog={int(m['catalog_size'])}")


RENDER_MODES = ["human", "ansi"]
"""``ansi`` returns the text summary; ``human`` writes it to stdout (PettingZoo's convention
for text envs; ``render_test`` builds every env with ``render_mode="human"`` first)."""


def check_render_mode(render_mode: str | None) -> str | None:
    """``render_mode`` if it is None or one of :data:`RENDER_MODES`, else ``ValueError``."""
    if render_mode is not None and render_mode not in RENDER_MODES:
        raise ValueError(f"render_mode must be None or one of {RENDER_MODES}, got "
                         f"{render_mode!r}")
    return render_mode


def render_text(render_mode: str | None, text: str) -> str | None:
    """The ``render()`` of every face: ``text`` for ``ansi``, printed for ``human``."""
    if render_mode == "ansi":
        return text
    if render_mode == "human":
        # the user asked for a display: the one place library code writes to stdout
        sys.stdout.write(text + "\n")
    return None


def check_count(name: str, value: Any) -> int:
    """``value`` as an int if it is an int >= 1 (numpy ints too, bools not)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)


class AgentSpaces:
    """Per-agent space lookup shared by the env faces: subclasses fill ``_obs_spaces`` and
    ``_act_spaces`` (agent id -> space) in ``__init__``, so each call returns the same object."""

    possible_agents: list[str]
    _obs_spaces: dict[str, spaces.Space]
    _act_spaces: dict[str, spaces.Space]

    def observation_space(self, agent: str) -> spaces.Space:
        """The observation space of ``agent`` (the same object on every call)."""
        return self._space(self._obs_spaces, agent)

    def action_space(self, agent: str) -> spaces.Space:
        """The action space of ``agent`` (the same object on every call)."""
        return self._space(self._act_spaces, agent)

    def _space(self, table: dict[str, spaces.Space], agent: str) -> spaces.Space:
        if agent not in table:
            raise ValueError(f"unknown agent {agent!r}; agents are {self.possible_agents}")
        return table[agent]


def agent_spaces(config: EnvConfig, world: Any, recommenders: list[str], providers: list[str]
                 ) -> tuple[dict[str, spaces.Space], dict[str, spaces.Space]]:
    """Observation and action spaces of the recommender and provider agents: one space object
    per agent, so seeding one agent's space leaves the others alone."""
    obs: dict[str, spaces.Space] = {}
    act: dict[str, spaces.Space] = {}
    for a in recommenders:
        obs[a] = world.layout.space()
        act[a] = recommender_action_space(config)
    for a in providers:
        obs[a] = spaces.Box(-np.inf, np.inf, (world.provider_obs_dim,), np.float32)
        act[a] = provider_action_space(config)
    return obs, act


class RecSimParallelEnv(AgentSpaces, ParallelEnv):
    """Recommenders and providers acting simultaneously in one batched world.

    Args:
        config: world configuration.
        max_cycles: steps per episode (all agents are truncated after it).
        render_mode: ``None``, ``"ansi"`` (a one-line text summary) or ``"human"`` (the same
            line printed).
    """

    metadata = {"name": ENV_NAME, "render_modes": list(RENDER_MODES), "is_parallelizable": True}

    def __init__(self, config: EnvConfig, max_cycles: int = 1000,
                 render_mode: str | None = None) -> None:
        if not isinstance(config, EnvConfig):
            raise ValueError(f"config must be an EnvConfig, got {type(config).__name__}")
        self.max_cycles = check_count("max_cycles", max_cycles)
        self.render_mode = check_render_mode(render_mode)
        self.config = config
        self.world = World(config)
        self.layout = self.world.layout
        self.recommenders = [f"recommender_{i}" for i in range(config.n_recommenders)]
        self.providers = [f"provider_{j}" for j in range(config.n_providers)]
        self.possible_agents = self.recommenders + self.providers
        self.agents: list[str] = []
        self._obs_spaces, self._act_spaces = agent_spaces(
            config, self.world, self.recommenders, self.providers)
        self._seeder = np.random.default_rng()
        self._cycles = 0

    # ------------------------------------------------------------------ API
    def reset(self, seed: int | None = None, options: dict | None = None):
        """Start an episode. ``seed`` re-seeds the env's generator; ``None`` continues it."""
        if seed is not None:
            self._seeder = np.random.default_rng(seed)
        self.world.reset(self._seeder.spawn(1)[0])
        self.agents = list(self.possible_agents)
        self._cycles = 0
        infos = {a: {} for a in self.agents}
        return self._observations(), infos

    def _observations(self) -> dict[str, np.ndarray]:
        rec = self.world.recommender_obs()
        obs = dict(zip(self.recommenders, rec))
        if self.providers:
            obs.update(zip(self.providers, self.world.provider_obs()))
        return obs

    def parse_actions(self, actions: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """Validate an action dict and return ``(slates (R, k) int64, publish (P,) int64)``.

        Raises:
            ValueError: unknown, missing or invalid actions (nothing is changed).
        """
        if not isinstance(actions, Mapping):
            raise ValueError(f"actions must be a dict of agent id -> action, got "
                             f"{type(actions).__name__}")
        if not self.agents:
            raise ValueError("step() called on a finished episode; call reset() first")
        unknown = [a for a in actions if a not in self.agents]
        if unknown:
            raise ValueError(f"actions for unknown or inactive agent(s) {unknown}; live agents "
                             f"are {self.agents}")
        missing = [a for a in self.agents if a not in actions]
        if missing:
            raise ValueError(f"missing actions for agent(s) {missing}; every live agent must act")
        cfg = self.config
        slates = np.empty((cfg.n_recommenders, cfg.slate_size), np.int64)
        for i, a in enumerate(self.recommenders):
            slates[i] = validate_slate(a, actions[a], self._act_spaces[a], cfg)
        publish = np.empty(cfg.n_providers, np.int64)
        for j, a in enumerate(self.providers):
            publish[j] = validate_discrete(a, actions[a], self._act_spaces[a])
        return slates, publish

    def step(self, actions: Mapping[str, Any]):
        """Advance the world one step with every live agent's action."""
        slates, publish = self.parse_actions(actions)
        res = self.world.step(slates, publish)
        self._cycles += 1
        obs = self._observations()
        rewards: dict[str, float] = {}
        infos: dict[str, dict] = {}
        fill_step_outputs(res, self.recommenders, self.providers, rewards, infos)
        done = self._cycles >= self.max_cycles
        terminations = dict.fromkeys(self.agents, False)
        truncations = dict.fromkeys(self.agents, done)
        if done:
            self.agents = []
        return obs, rewards, terminations, truncations, infos

    def metrics(self) -> dict[str, float]:
        """Run-level metrics since the last reset (see ``World.metrics``)."""
        return self.world.metrics()

    def render(self) -> str | None:
        """Text summary of the run so far: returned (``ansi``) or printed (``human``)."""
        return render_text(self.render_mode, metrics_line(self.metrics()))

    def close(self) -> None:
        """Nothing to release."""
