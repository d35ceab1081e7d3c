"""PettingZoo AEC env over the batched world: turn-based, with optional user agents.

One *cycle* is one world step. Within a cycle the turn order is

    provider_0 .. provider_{P-1}, recommender_0 .. recommender_{R-1}, user_k (in session) ...

Providers and recommenders act every cycle. ``user_k`` (``k < n_user_agents``) is bound to user
id ``k``; it sees the slate that its session's recommender chose *this cycle* and picks a slate
position or no click. Every user without an agent is driven by the configured choice model.

Skipping (how a user agent's turn is left out): when user ``k`` is not in a session at the
start of a cycle, ``user_k`` simply gets **no turn** in that cycle: ``agent_selection`` goes
from the last recommender (or the previous user agent in session) to the next user agent in
session, or straight to the world step. The agent stays in ``env.agents`` with
``terminations``/``truncations`` False and reward 0 while skipped (PettingZoo's turn order is
the env's to choose, as in card games where only some players move; ``api_test`` accepts it).
It is not masked, removed or terminated: it cannot die and come back under the same name.
When the episode ends (``max_cycles`` cycles), every agent, skipped or not, is truncated and
gets its one final turn, which must be stepped with ``None``.

Observations:

* ``recommender_i``: as in the parallel env (:class:`recsim_env.ObsLayout`).
* ``provider_j``: as in the parallel env.
* ``user_k``: a flat float32 vector ``[interest (T) | satiation (T) | position 0 | ... |
  position k-1]`` where each position holds the candidate features the recommender sees
  (``content | age, log_impressions, ctr, cold_start``) followed by an ``empty`` flag (1 for a
  repeated candidate, shown once, and for every position when no slate is shown, e.g. on the
  final truncated turn). See :func:`user_observations`.

Actions of ``user_k``: ``Discrete(slate_size + 1)``; ``j < slate_size`` clicks position ``j``,
``slate_size`` is no click. A click on an empty position counts as no click;
``infos[user_k]["action_mask"]`` (int8, length ``slate_size + 1``) marks the positions that
can be clicked, for learners that use masks. Reward: the user's own utility of the clicked
item (``StepResult.user_utility``; 0 without a click), given after the world step.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import AECEnv

from recsim_env.actions import validate_discrete, validate_slate
from recsim_env.config import EnvConfig
from recsim_env.items import repeated_mask
from recsim_env.parallel import (
    ENV_NAME,
    RENDER_MODES,
    AgentSpaces,
    agent_spaces,
    check_count,
    check_render_mode,
    fill_step_outputs,
    metrics_line,
    render_text,
)
from recsim_env.world import World

_PROVIDER, _RECOMMENDER, _USER = 0, 1, 2


# ---------------------------------------------------------------------------- user agents
def user_obs_dim(config: EnvConfig, item_dim: int) -> int:
    """Length of a user-agent observation: ``2 * n_topics + slate_size * (item_dim + 1)``."""
    return 2 * config.n_topics + config.slate_size * (item_dim + 1)


def user_observation_space(config: EnvConfig, item_dim: int) -> spaces.Box:
    """Flat, unbounded float32 ``Box`` of :func:`user_obs_dim` (content features are not
    bounded in general)."""
    return spaces.Box(-np.inf, np.inf, (user_obs_dim(config, item_dim),), np.float32)


def user_action_space(config: EnvConfig) -> spaces.Discrete:
    """``Discrete(slate_size + 1)``: a slate position, or ``slate_size`` for no click."""
    return spaces.Discrete(config.slate_size + 1)


def user_observations(
    world: World,
    users: np.ndarray,
    slots: np.ndarray,
    slates: np.ndarray,
    show: np.ndarray,
    rec_obs: np.ndarray | None = None,
) -> np.ndarray:
    """Observations of user agents.

    Args:
        world: the world (read only).
        users: (m,) int64 user ids.
        slots: (m,) int64 session slot serving each user, or -1 when not in a session (the
            state then comes from the population arrays, as of the user's last update).
        slates: (m, slate_size) int64 slate shown to each user; ignored where ``~show``.
        show: (m,) bool: a slate is shown (the user is in session and its recommender acted).
        rec_obs: (n_sessions, obs_size) recommender observations of every slot, if the caller
            has them (saves recomputing the candidate features).

    Returns:
        (m, user_obs_dim) float32.
    """
    cfg, lay = world.config, world.layout
    T, k, d = cfg.n_topics, cfg.slate_size, lay.item_dim
    m = users.shape[0]
    out = np.zeros((m, 2 * T + k * (d + 1)), np.float32)
    live = slots >= 0
    S, U = world.sessions, world.users
    if live.any():
        out[live, :T] = S.interest[slots[live]]
        out[live, T: 2 * T] = S.satiation[slots[live]]
    if (~live).any():
        out[~live, :T] = U.interest[users[~live]]
        out[~live, T: 2 * T] = U.satiation[users[~live]]
    pos = out[:, 2 * T:].reshape(m, k, d + 1)
    pos[:, :, d] = 1.0
    rows = np.flatnonzero(show)
    if rows.size:
        if rec_obs is None:
            cand = lay.split(world.recommender_obs(slots[rows]))[1]
        else:
            cand = lay.split(rec_obs[slots[rows]])[1]
        sl = slates[rows]
        feats = np.take_along_axis(cand, sl[:, :, None], axis=1)  # (r, k, d)
        empty = repeated_mask(sl)
        pos[rows, :, :d] = np.where(empty[:, :, None], 0.0, feats)
        pos[rows, :, d] = empty
    return out


def user_action_mask(slate: np.ndarray | None, slate_size: int) -> np.ndarray:
    """(slate_size + 1,) int8: 1 for clickable positions (shown, not repeated) and no click."""
    mask = np.ones(slate_size + 1, np.int8)
    if slate is None:
        mask[:slate_size] = 0
    else:
        mask[:slate_size] = ~repeated_mask(slate[None])[0]
    return mask


def user_choice(action: int, slate: np.ndarray) -> int:
    """World ``choice_override`` of a user-agent action: the position, or -1 for no click
    (``action == slate_size``, or a click on an empty position)."""
    k = slate.shape[0]
    if action >= k or (action > 0 and bool((slate[:action] == slate[action]).any())):
        return -1
    return int(action)


def sessions_of_users(world: World, n_user_agents: int) -> np.ndarray:
    """(n_user_agents,) int64: the session slot serving each user ``0..n-1``, -1 if none."""
    slot = np.full(n_user_agents, -1, np.int64)
    su = world.sessions.user
    m = su < n_user_agents
    slot[su[m]] = np.flatnonzero(m)
    return slot


# ---------------------------------------------------------------------------- the AEC env
class RecSimAECEnv(AgentSpaces, AECEnv):
    """Turn-based env over one batched world: providers, then recommenders, then user agents.

    Args:
        config: world configuration (``n_user_agents`` user agents, bound to users 0..n-1).
        max_cycles: world steps per episode; then every agent is truncated.
        render_mode: ``None``, ``"ansi"`` or ``"human"`` (see
            :func:`recsim_env.parallel.render_text`).
    """

    metadata = {"name": ENV_NAME, "render_modes": list(RENDER_MODES), "is_parallelizable": False}

    def __init__(self, config: EnvConfig, max_cycles: int = 1000,
                 render_mode: str | None = None) -> None:
        super().__init__()
        if not isinstance(config, EnvConfig):
            raise ValueError(f"config must be an EnvConfig, got {type(config).__name__}")
        self.max_cycles = check_count("max_cycles", max_cycles)
        self.render_mode = check_render_mode(render_mode)
        self.config = config
        self.world = World(config)
        self.layout = self.world.layout
        # Without user agents every agent acts every cycle, in a fixed order, so the AEC and
        # parallel forms are interchangeable.
        self.metadata = {**self.metadata, "is_parallelizable": config.n_user_agents == 0}
        self.providers = [f"provider_{j}" for j in range(config.n_providers)]
        self.recommenders = [f"recommender_{i}" for i in range(config.n_recommenders)]
        self.user_agents = [f"user_{k}" for k in range(config.n_user_agents)]
        self.possible_agents = self.providers + self.recommenders + self.user_agents
        self._role = {a: (_PROVIDER, j) for j, a in enumerate(self.providers)}
        self._role |= {a: (_RECOMMENDER, i) for i, a in enumerate(self.recommenders)}
        self._role |= {a: (_USER, k) for k, a in enumerate(self.user_agents)}
        self._obs_spaces, self._act_spaces = agent_spaces(
            config, self.world, self.recommenders, self.providers)
        for a in self.user_agents:
            self._obs_spaces[a] = user_observation_space(config, self.layout.item_dim)
            self._act_spaces[a] = user_action_space(config)
        self._base_order = self.providers + self.recommenders
        self._seeder = np.random.default_rng()
        self.agents: list[str] = []
        self.rewards: dict[str, float] = {}
        self._cumulative_rewards: dict[str, float] = {}
        self.terminations: dict[str, bool] = {}
        self.truncations: dict[str, bool] = {}
        self.infos: dict[str, dict[str, Any]] = {}
        self._cycles = 0

    # ------------------------------------------------------------------ reset
    def reset(self, seed: int | None = None, options: dict | None = None) -> None:
        """Start an episode: a fresh world. ``seed`` re-seeds the env's generator; ``None``
        continues it (the next episode differs from the last)."""
        if seed is not None:
            self._seeder = np.random.default_rng(seed)
        self.world.reset(self._seeder.spawn(1)[0])
        self.agents = list(self.possible_agents)
        self.rewards = dict.fromkeys(self.agents, 0.0)
        self._cumulative_rewards = dict.fromkeys(self.agents, 0.0)
        self.terminations = dict.fromkeys(self.agents, False)
        self.truncations = dict.fromkeys(self.agents, False)
        self.infos = {a: {} for a in self.agents}
        self._skip_agent_selection = None
        self._cycles = 0
        self._begin_cycle()

    def _begin_cycle(self) -> None:
        cfg = self.config
        self._rec_obs: np.ndarray | None = None
        self._prov_obs: np.ndarray | None = None
        self._slates = np.zeros((cfg.n_recommenders, cfg.slate_size), np.int64)
        self._rec_acted = np.zeros(cfg.n_recommenders, bool)
        self._publish = np.zeros(cfg.n_providers, np.int64)
        self._user_choice: dict[int, int] = {}
        if cfg.n_user_agents:
            self._user_slot = sessions_of_users(self.world, cfg.n_user_agents)
            live = np.flatnonzero(self._user_slot >= 0)
            self._order = self._base_order + [self.user_agents[k] for k in live]
        else:
            self._order = self._base_order
        self._turn = 0
        self._select(self._order[0])

    def _select(self, agent: str) -> None:
        self.agent_selection = agent
        role, k = self._role[agent]
        if role == _USER:
            slate = self._slates[self._user_slot[k]]
            self.infos[agent] = {**self.infos[agent],
                                 "action_mask": user_action_mask(slate, self.config.slate_size)}

    # ------------------------------------------------------------------ observe
    def _all_rec_obs(self) -> np.ndarray:
        if self._rec_obs is None:
            self._rec_obs = self.world.recommender_obs()
        return self._rec_obs

    def observe(self, agent: str) -> np.ndarray:
        """The current observation of ``agent`` (a new array)."""
        if agent not in self._role:
            raise ValueError(f"unknown agent {agent!r}; agents are {self.possible_agents}")
        role, i = self._role[agent]
        if role == _RECOMMENDER:
            return self._all_rec_obs()[i].copy()
        if role == _PROVIDER:
            if self._prov_obs is None:
                self._prov_obs = self.world.provider_obs()
            return self._prov_obs[i].copy()
        slot = int(self._user_slot[i]) if self.agents else -1
        show = slot >= 0 and bool(self._rec_acted[slot])
        slates = self._slates[[max(slot, 0)]]
        return user_observations(
            self.world, np.array([i]), np.array([slot]), slates, np.array([show]),
            self._all_rec_obs() if show else None)[0]

    # ------------------------------------------------------------------ step
    def step(self, action: Any) -> None:
        """Act for ``agent_selection``; after the last turn of a cycle the world steps."""
        if not self.agents:
            raise ValueError("step() called on a finished episode; call reset() first")
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return
        role, i = self._role[agent]
        space = self._act_spaces[agent]
        if role == _RECOMMENDER:
            self._slates[i] = validate_slate(agent, action, space, self.config)
            self._rec_acted[i] = True
        elif role == _PROVIDER:
            self._publish[i] = validate_discrete(agent, action, space)
        else:
            a = validate_discrete(agent, action, space)
            self._user_choice[i] = user_choice(a, self._slates[self._user_slot[i]])
        self._cumulative_rewards[agent] = 0.0
        self._turn += 1
        if self._turn < len(self._order):
            self._clear_rewards()
            self._select(self._order[self._turn])
        else:
            self._world_step()
        self._accumulate_rewards()

    def _world_step(self) -> None:
        cfg = self.config
        override = None
        if self._user_choice:
            override = np.full(cfg.n_recommenders, -2, np.int64)
            for k, c in self._user_choice.items():
                override[self._user_slot[k]] = c
        res = self.world.step(self._slates, self._publish, override)
        self._cycles += 1
        rewards = self.rewards
        infos = self.infos
        fill_step_outputs(res, self.recommenders, self.providers, rewards, infos)
        for a in self.user_agents:
            rewards[a] = 0.0
        for k, c in self._user_choice.items():
            a, s = self.user_agents[k], self._user_slot[k]
            rewards[a] = float(res.user_utility[s])
            infos[a] = {"choice": int(res.choice[s]), "utility": float(res.user_utility[s]),
                        "session_ended": bool(res.session_ended[s])}
        if self._cycles >= self.max_cycles:
            self.truncations = dict.fromkeys(self.agents, True)
            self._rec_obs = None
            self._prov_obs = None
            self._rec_acted[:] = False
            self._user_slot = sessions_of_users(self.world, cfg.n_user_agents)
            self.agent_selection = self.agents[0]
        else:
            self._begin_cycle()

    # ------------------------------------------------------------------ misc
    def metrics(self) -> dict[str, float]:
        """Run-level metrics since the last reset (see ``World.metrics``)."""
        return self.world.metrics()

    def render(self) -> str | None:
        """Text summary of the run so far: returned (``ansi``) or printed (``human``)."""
        return render_text(self.render_mode, metrics_line(self.metrics()))

    def close(self) -> None:
        """Nothing to release."""
