"""The one batched rollout loop: act -> world step -> truncation -> transition.

Training (:class:`agents.runner.Runner`), evaluation (:func:`agents.evaluation.evaluate`), the
benchmark suite and every study step the world through :class:`Rollout`, so an episode, a
session return and a time-limit truncation mean the same thing everywhere.

* ``recommender_i`` rows are the world's session slots. One learner object mapped to several
  recommenders acts for all of them in one batched call (parameter sharing); distinct objects
  learn independently. A role name maps every agent of the role (``{"recommender": dqn}``).
  A recommender's episode is a session: *terminated* when the user leaves (budget or
  patience ran out), *truncated* when it reaches ``max_session_steps`` steps (decided here and
  nowhere else: the session is then ended with :meth:`World.restart_sessions`).
* ``provider_j`` acts every world step; its episodes are ``provider_episode_steps`` world
  steps long (truncated, the world goes on).
* ``user_k`` acts on the steps its user is in a session, after seeing the slate (the world's
  ``choice_override``); its episode is its session.

Agents without a learner get built-in behaviour: recommenders uniformly random slates
(:func:`recsim_env.items.random_slates`), providers publish nothing beyond the background
arrivals, users the configured choice model.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.base import ActContext, Transition
from recsim_env import aec as aec_lib
from recsim_env.config import EnvConfig
from recsim_env.items import random_slates, repeated_mask
from recsim_env.world import StepResult, World

__all__ = ["ROLES", "Assignment", "Rollout", "RolloutStep", "assign", "assign_rows"]

ROLES = ("recommender", "provider", "user")

TRAIN_STREAM, EVAL_STREAM = 1, 2
"""Keys of the built-in behaviour's generator: ``default_rng([world_seed, key])`` in training
and in evaluation, so the two never share a stream."""

NO_OVERRIDE = -2
"""``World.step``'s ``choice_override`` value that lets the choice model decide."""


@dataclass
class Assignment:
    """One learner and the rows (agent indices within a role) it acts for."""

    name: str
    role: str
    learner: Any
    rows: np.ndarray


def assign(learners: dict[str, Any], cfg: EnvConfig, n_sessions: int) -> list[Assignment]:
    """Group agent ids (``recommender_0``) or role names (``recommender``) by learner object.

    Args:
        learners: agent id or role -> learner; a specific agent id overrides its role's.
        cfg: the world's config (how many providers and user agents exist).
        n_sessions: session slots (recommender rows).

    Raises:
        ValueError: an unknown or non-existent agent id, or ``n_sessions`` different from
            ``n_recommenders`` without one learner mapped to the whole role.
    """
    counts = {"recommender": n_sessions, "provider": cfg.n_providers, "user": cfg.n_user_agents}
    owner: dict[tuple[str, int], Any] = {}
    names: dict[int, str] = {}
    for key, learner in sorted(learners.items(), key=lambda kv: kv[0] not in ROLES):
        if key in ROLES:
            role, idx = key, range(counts[key])
        else:
            role, _, num = key.rpartition("_")
            if role not in ROLES or not num.isdigit():
                raise ValueError(f"unknown agent id {key!r}; use <role>_<index> or a role name "
                                 f"({', '.join(ROLES)})")
            if int(num) >= counts[role]:
                raise ValueError(f"agent {key!r} does not exist: this config has "
                                 f"{counts[role]} {role} agent(s)")
            idx = [int(num)]
        for i in idx:
            owner[(role, i)] = learner
        names.setdefault(id(learner), key)
    if n_sessions != cfg.n_recommenders:
        rec = {id(owner.get(("recommender", i))) for i in range(n_sessions)}
        if len(rec) != 1 or ("recommender", 0) not in owner:
            raise ValueError("n_sessions differs from n_recommenders: map one learner to the "
                             "whole role ({'recommender': learner})")
    groups: dict[tuple[str, int], list[int]] = collections.defaultdict(list)
    objs: dict[int, Any] = {}
    for (role, i), learner in sorted(owner.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        groups[(role, id(learner))].append(i)
        objs[id(learner)] = learner
    out = []
    for (role, lid), rows in groups.items():
        base = names[lid]
        name = base if base.startswith(role) else f"{role}:{base}"
        out.append(Assignment(name, role, objs[lid], np.asarray(rows, np.int64)))
    for a in out:
        for method in ("act", "update", "state_dict", "load_state_dict"):
            if not callable(getattr(a.learner, method, None)):
                raise ValueError(f"learner for {a.name} has no {method}() method; see "
                                 "agents.base.Learner")
    return out


def assign_rows(policy: Any, n_sessions: int) -> list[Assignment]:
    """Recommender assignments for a learner, or a sequence of learners that share the
    session slots (slot ``i`` is served by ``policy[i % len(policy)]``)."""
    group = list(policy) if isinstance(policy, (list, tuple)) else [policy]
    slots = np.arange(n_sessions, dtype=np.int64)
    return [Assignment(f"recommender:{j}", "recommender", learner, slots[j::len(group)])
            for j, learner in enumerate(group)]


@dataclass
class RolloutStep:
    """What one :meth:`Rollout.step` did (leading axis = session slot unless noted).

    Attributes:
        result: the world's :class:`recsim_env.world.StepResult`.
        slates: (s, slate_size) int64 the slates shown.
        started_at: (s,) int64 rollout step at which each slot's session (the one this step
            belonged to) started.
        terminated: (s,) bool the session ended (the user left).
        truncated: (s,) bool the session reached ``max_session_steps`` and was ended here.
        episode_return: (s,) summed reward of the sessions that ended (terminated or
            truncated) at this step; undefined elsewhere.
        episode_length: (s,) int64 their lengths.
        provider_episodes: (returns, lengths) of provider episodes that ended, or ``None``.
        user_episodes: (returns, lengths) of user-agent episodes that ended, or ``None``.
        metrics: what the learners' ``update`` returned (SB3 tags), per assignment name.
    """

    result: StepResult
    slates: np.ndarray
    started_at: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    episode_return: np.ndarray
    episode_length: np.ndarray
    provider_episodes: tuple[np.ndarray, np.ndarray] | None
    user_episodes: tuple[np.ndarray, np.ndarray] | None
    metrics: dict[str, dict[str, float]]

    @property
    def ended(self) -> np.ndarray:
        """(s,) bool: the sessions that ended at this step, terminated or truncated."""
        return self.terminated | self.truncated


class Rollout:
    """Step a world with a set of learner assignments, one world step at a time.

    Args:
        world: a reset :class:`recsim_env.World`.
        assignments: from :func:`assign` or :func:`assign_rows`.
        rng: the generator of the built-in behaviour (random slates of unassigned rows).
        max_session_steps: truncate sessions at this length (``None``: never).
        provider_episode_steps: world steps per provider episode.
    """

    def __init__(self, world: World, assignments: list[Assignment], rng: np.random.Generator,
                 *, max_session_steps: int | None = None,
                 provider_episode_steps: int = 1000) -> None:
        if max_session_steps is not None and max_session_steps < 1:
            raise ValueError(f"max_session_steps must be None or >= 1, got {max_session_steps}")
        if provider_episode_steps < 1:
            raise ValueError(f"provider_episode_steps must be >= 1, got {provider_episode_steps}")
        self.world = world
        self.config = world.config
        self.assignments = assignments
        self.rng = rng
        self.max_session_steps = max_session_steps
        self.provider_episode_steps = provider_episode_steps
        self._by_role = {r: [a for a in assignments if a.role == r] for r in ROLES}
        rec_rows = [a.rows for a in self._by_role["recommender"]]
        covered = np.zeros(world.n_sessions, bool)
        if rec_rows:
            covered[np.concatenate(rec_rows)] = True
        self._free = np.flatnonzero(~covered)
        self._slots = np.arange(world.n_sessions)
        self.t = 0
        self.started_at = np.zeros(world.n_sessions, np.int64)
        self._prov_ret = np.zeros(self.config.n_providers)
        self._user_ret = np.zeros(self.config.n_user_agents)
        self._user_len = np.zeros(self.config.n_user_agents, np.int64)
        self.refresh()

    def refresh(self) -> None:
        """Re-read the observations from the world (after loading its state)."""
        self.obs = self.world.recommender_obs()

    # ------------------------------------------------------------------ acting
    def _context(self, rows: np.ndarray) -> ActContext:
        w = self.world
        ids = w.candidates.item_id[rows]
        born = (np.full_like(ids, -1) if w.catalog is None
                else np.where(ids >= 0, w.catalog.born_at[np.maximum(ids, 0)], -1))
        return ActContext(w, rows, w.sessions.user[rows].copy(), ids.copy(),
                          w.candidates.provider[rows].copy(), born)

    def _next_context(self, ctx: ActContext, ended: np.ndarray) -> ActContext:
        """The context of the next observation of ``ctx``'s rows, right after the world step:
        the same users, the candidates drawn for the next step, except where the session
        ``ended`` (its terminal observation shows this step's candidates)."""
        now = self._context(ctx.slots)
        keep = ended[:, None]
        return ctx._replace(item_ids=np.where(keep, ctx.item_ids, now.item_ids),
                            providers=np.where(keep, ctx.providers, now.providers),
                            item_born=np.where(keep, ctx.item_born, now.item_born))

    def act(self, obs: np.ndarray, prov_obs: np.ndarray | None, explore: bool
            ) -> tuple[np.ndarray, np.ndarray | None, list[tuple[Assignment, ActContext]]]:
        """Slates of every session slot, the providers' publications, and the contexts."""
        cfg, n = self.config, self.world.n_sessions
        slates = np.empty((n, cfg.slate_size), np.int64)
        contexts = []
        for a in self._by_role["recommender"]:
            ctx = self._context(a.rows)
            act = np.asarray(a.learner.act(obs[a.rows], ctx, explore=explore))
            slates[a.rows] = act.reshape(a.rows.size, cfg.slate_size)
            contexts.append((a, ctx))
        if self._free.size:
            slates[self._free] = random_slates(self.rng, self._free.size, cfg.n_candidates,
                                               cfg.slate_size)
        publish = None
        if cfg.n_providers:
            publish = np.zeros(cfg.n_providers, np.int64)
            for a in self._by_role["provider"]:
                publish[a.rows] = np.asarray(a.learner.act(prov_obs[a.rows], None,
                                                           explore=explore)).reshape(-1)
        return slates, publish, contexts

    def _user_turns(self, slates: np.ndarray, obs: np.ndarray, explore: bool
                    ) -> tuple[np.ndarray | None, dict[str, np.ndarray] | None]:
        """User agents in session choose; returns the world's choice_override and the turn."""
        n_ua = self.config.n_user_agents
        groups = self._by_role["user"]
        if n_ua == 0 or not groups:
            return None, None
        world = self.world
        slot = aec_lib.sessions_of_users(world, n_ua)
        override = np.full(world.n_sessions, NO_OVERRIDE, np.int64)
        turn: dict[str, list[np.ndarray]] = {"users": [], "obs": [], "action": [], "slot": []}
        k = self.config.slate_size
        for a in groups:
            rows = a.rows[slot[a.rows] >= 0]
            if rows.size == 0:
                continue
            s = slot[rows]
            uobs = aec_lib.user_observations(world, rows, s, slates[s], np.ones(rows.size, bool),
                                             obs)
            act = np.asarray(a.learner.act(uobs, None, explore=explore)).reshape(-1)
            empty = repeated_mask(slates[s])
            pos = np.where(act >= k, -1, act)
            pos = np.where((pos >= 0) & empty[np.arange(rows.size), np.maximum(pos, 0)], -1, pos)
            override[s] = pos
            turn["users"].append(rows)
            turn["obs"].append(uobs)
            turn["action"].append(act)
            turn["slot"].append(s)
        if not turn["users"]:
            return override, None
        return override, {key: np.concatenate(v) for key, v in turn.items()}

    # ------------------------------------------------------------------ one step
    def step(self, *, explore: bool, learn: bool) -> RolloutStep:
        """One world step for every session slot, provider and user agent."""
        world, cfg = self.world, self.config
        obs = self.obs
        prov_obs = world.provider_obs() if cfg.n_providers else None
        slates, publish, contexts = self.act(obs, prov_obs, explore)
        override, turn = self._user_turns(slates, obs, explore)
        res = world.step(slates, publish, override)
        next_obs = world.recommender_obs()
        terminated = res.session_ended.copy()
        # what next_obs shows, read before a time-limited session restarts
        next_contexts = [self._next_context(ctx, terminated[a.rows]) for a, ctx in contexts]
        ep_ret = res.session_return.astype(np.float64, copy=True)
        ep_len = res.session_length.astype(np.int64, copy=True)
        truncated = np.zeros(world.n_sessions, bool)
        learn_next = next_obs
        if terminated.any():
            learn_next = next_obs.copy()
            learn_next[terminated] = res.terminal_obs
        if self.max_session_steps is not None:
            truncated = world.time_limited(self.max_session_steps, ~terminated)
            if truncated.any():
                # the truncated session's last observation is its final one; then the slot
                # starts a new session, observed afresh
                if learn_next is next_obs:
                    learn_next = next_obs.copy()
                ep_ret[truncated] = world.sessions.ret[truncated]
                ep_len[truncated] = world.sessions.steps[truncated]
                world.restart_sessions(truncated)
                rows = np.flatnonzero(truncated)
                next_obs[rows] = world.recommender_obs(rows)
        metrics: dict[str, dict[str, float]] = {}
        for (a, ctx), next_ctx in zip(contexts, next_contexts, strict=True):
            # learners update; a learner that keeps its own memory of the users observes the
            # step also when it does not learn (evaluation)
            observe = getattr(a.learner, "observe", None)
            if learn or observe is not None:
                r = a.rows
                batch = Transition(obs[r], slates[r], res.reward[r].astype(np.float64),
                                   learn_next[r], terminated[r], truncated[r],
                                   res.choice[r].astype(np.int64), ctx, next_ctx)
                if learn:
                    metrics[a.name] = a.learner.update(batch) or {}
                else:
                    observe(batch)
        prov_eps = self._provider_step(prov_obs, publish, res, learn, metrics)
        user_eps = self._user_step(turn, res, learn, metrics) if turn is not None else None
        started = self.started_at.copy()
        ended = terminated | truncated
        self.t += 1
        self.started_at[ended] = self.t
        self.obs = next_obs
        return RolloutStep(res, slates, started, terminated, truncated, ep_ret, ep_len,
                           prov_eps, user_eps, metrics)

    def _provider_step(self, prov_obs: np.ndarray | None, publish: np.ndarray | None,
                       res: StepResult, learn: bool, metrics: dict[str, dict[str, float]]
                       ) -> tuple[np.ndarray, np.ndarray] | None:
        if not self.config.n_providers:
            return None
        self._prov_ret += res.provider_reward
        trunc_now = (self.t + 1) % self.provider_episode_steps == 0
        if learn and self._by_role["provider"]:
            next_prov = self.world.provider_obs()
            for a in self._by_role["provider"]:
                r = a.rows
                n = r.size
                batch = Transition(prov_obs[r], publish[r], res.provider_reward[r], next_prov[r],
                                   np.zeros(n, bool), np.full(n, trunc_now), np.full(n, -1), None)
                metrics[a.name] = a.learner.update(batch) or {}
        if not trunc_now:
            return None
        out = (self._prov_ret.copy(), np.full(self._prov_ret.size, self.provider_episode_steps))
        self._prov_ret[:] = 0
        return out

    def _user_step(self, turn: dict[str, np.ndarray], res: StepResult, learn: bool,
                   metrics: dict[str, dict[str, float]]) -> tuple[np.ndarray, np.ndarray]:
        """User transitions: the reward is the user's utility; the next observation is the
        user's own state right after the step with no slate shown yet (the next slate is not
        known until the recommender acts); terminated when the user's session ended."""
        users, slot = turn["users"], turn["slot"]
        reward = res.user_utility[slot]
        ended = res.session_ended[slot]
        self._user_ret[users] += reward
        self._user_len[users] += 1
        if learn:
            world, k = self.world, self.config.slate_size
            now = aec_lib.sessions_of_users(world, self.config.n_user_agents)[users]
            next_obs = aec_lib.user_observations(world, users, now,
                                                 np.zeros((users.size, k), np.int64),
                                                 np.zeros(users.size, bool))
            for a in self._by_role["user"]:
                mine = np.isin(users, a.rows)
                if not mine.any():
                    continue
                n = int(mine.sum())
                batch = Transition(turn["obs"][mine], turn["action"][mine], reward[mine],
                                   next_obs[mine], ended[mine], np.zeros(n, bool),
                                   np.full(n, -1))
                metrics[a.name] = a.learner.update(batch) or {}
        done = users[ended]
        out = (self._user_ret[done].copy(), self._user_len[done].copy())
        self._user_ret[done] = 0
        self._user_len[done] = 0
        return out

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Counters and the built-in generator (the world and learners save themselves)."""
        return {"t": self.t, "rng": self.rng.bit_generator.state,
                "started_at": self.started_at.copy(), "prov_ret": self._prov_ret.copy(),
                "user_ret": self._user_ret.copy(), "user_len": self._user_len.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` (after the world was restored)."""
        self.t = int(state["t"])
        self.rng.bit_generator.state = state["rng"]
        self.started_at = np.array(state["started_at"], np.int64)
        self._prov_ret = np.array(state["prov_ret"], np.float64)
        self._user_ret = np.array(state["user_ret"], np.float64)
        self._user_len = np.array(state["user_len"], np.int64)
        self.refresh()
