"""Multi-agent runner: agent ids -> learners, a batched train/eval loop over the world,
TensorBoard logging with SB3's tags, and atomic checkpoints that resume bit for bit.

The runner drives :class:`recsim_env.World` directly (the same world every env face wraps), so
every role can be learned at once without per-agent dict overhead:

* ``recommender_i`` rows are the world's session slots. One learner object mapped to several
  recommenders acts for all of them in one batched call (parameter sharing); distinct objects
  learn independently. The role name maps every agent of a role: ``{"recommender": dqn}``.
  A recommender's episode is a session (terminated when the user leaves, truncated after
  ``max_session_steps``).
* ``provider_j`` acts every world step; its episodes are ``provider_episode_steps`` long
  (truncated, the world goes on).
* ``user_k`` acts on the steps its user is in a session, after seeing the slate (the world's
  ``choice_override``); its episode is its session.

Agents without a learner get built-in behaviour: recommenders uniformly random slates,
providers publish nothing beyond the background arrivals, users the configured choice model.

Checkpoints (``checkpoint.pt`` in the run directory) hold the world, every learner's
``state_dict`` and the runner's counters; resuming continues exactly as an uninterrupted run.
Ctrl-C (SIGINT) stops at the end of the current step and writes a checkpoint first.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from agents import logger as tags
from agents.base import ActContext, Transition
from agents.checkpoint import load_checkpoint, save_checkpoint
from recsim_env import aec as aec_lib
from recsim_env.config import EnvConfig
from recsim_env.items import repeated_mask
from recsim_env.world import World

log = logging.getLogger(__name__)

ROLES = ("recommender", "provider", "user")
CHECKPOINT_NAME = "checkpoint.pt"


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """How to train and evaluate.

    Attributes:
        total_steps: env steps to train (one env step = one recommender session-step, as in
            SB3's ``num_timesteps`` over a VecEnv).
        n_sessions: concurrent recommender sessions (world slots); default
            ``config.n_recommenders``. More sessions than recommender agents is only allowed
            when a single role-level learner (``{"recommender": ...}``) serves them all.
        seed: training seed (world and built-in behaviour).
        eval_seeds: held-out world seeds for evaluation (disjoint from ``seed``).
        eval_every: env steps between evaluations (0: only at the end).
        eval_steps: world steps in which the evaluated sessions start (each is followed to
            its end; see :meth:`Runner.evaluate`).
        max_session_steps: sessions longer than this are truncated.
        provider_episode_steps: world steps per provider episode (truncation).
        log_every: env steps between log dumps.
        checkpoint_every: env steps between checkpoints (0: only at the end / on Ctrl-C).
        save_checkpoints: write checkpoints at all (False for throw-away benchmark runs: a
            checkpoint holds every replay buffer, hundreds of MB; Ctrl-C then loses the run).
        eval_at_start: evaluate the untrained policies before the first step (step 0 of the
            ``eval/*`` curves).
        run_root: directory holding run directories (``runs/``).
        algo: algorithm name for the run directory.
        scenario: scenario name for the run directory.
        progress: show a progress bar.
        stdout_log: also print the SB3 log table.
    """

    total_steps: int = 100_000
    n_sessions: int | None = None
    seed: int = 0
    eval_seeds: tuple[int, ...] = (10_001, 10_002, 10_003)
    eval_every: int = 0
    eval_steps: int = 500
    max_session_steps: int = 1000
    provider_episode_steps: int = 1000
    log_every: int = 10_000
    checkpoint_every: int = 0
    save_checkpoints: bool = True
    eval_at_start: bool = False
    run_root: str = "runs"
    algo: str = "custom"
    scenario: str = "custom"
    progress: bool = True
    stdout_log: bool = False

    def __post_init__(self) -> None:
        def need(cond: bool, name: str, expected: str) -> None:
            if not cond:
                raise ValueError(f"{name} must be {expected}, got {getattr(self, name)!r}")

        need(self.total_steps >= 0, "total_steps", ">= 0")
        need(self.n_sessions is None or self.n_sessions >= 1, "n_sessions", "None or >= 1")
        need(self.seed not in self.eval_seeds, "eval_seeds",
             f"disjoint from the training seed {self.seed}")
        for name in ("eval_every", "checkpoint_every"):
            need(getattr(self, name) >= 0, name, ">= 0")
        for name in ("eval_steps", "max_session_steps", "provider_episode_steps", "log_every"):
            need(getattr(self, name) >= 1, name, ">= 1")
        for name in ("save_checkpoints", "eval_at_start", "progress", "stdout_log"):
            need(isinstance(getattr(self, name), bool), name, "a bool")
        need(self.save_checkpoints or self.checkpoint_every == 0, "checkpoint_every",
             "0 when save_checkpoints is False")


@dataclass
class _Assignment:
    """One learner and the rows (agent indices within a role) it acts for."""

    name: str
    role: str
    learner: Any
    rows: np.ndarray


def _resolve(learners: dict[str, Any], cfg: EnvConfig, n_sessions: int) -> list[_Assignment]:
    """Group agent ids by learner object, per role."""
    counts = {"recommender": n_sessions, "provider": cfg.n_providers, "user": cfg.n_user_agents}
    owner: dict[tuple[str, int], Any] = {}
    names: dict[int, str] = {}
    # role-level keys first, so that a specific agent id can override its role's learner
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
        out.append(_Assignment(name, role, objs[lid], np.asarray(rows, np.int64)))
    return out


def _nanmean(values: list[float]) -> float:
    """Mean of the finite values; NaN (without a warning) when there are none."""
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if arr.size else float("nan")


class Runner:
    """Train and evaluate a mix of learners over every role of one world.

    Args:
        config: the world's configuration.
        learners: agent id (``recommender_0``) or role (``recommender``) -> learner.
        run: training settings.
        run_dir: write here instead of a new ``run_root/<scenario>__<algo>__<seed>__<time>``.
        consensus: optional object with ``after_update(assignments, logger)`` called after
            every update round (see :mod:`agents.consensus`).
    """

    def __init__(self, config: EnvConfig, learners: dict[str, Any], run: RunConfig | None = None,
                 *, run_dir: str | Path | None = None, consensus: Any = None) -> None:
        self.config = config
        self.run = run or RunConfig()
        self.n_sessions = self.run.n_sessions or config.n_recommenders
        self.assignments = _resolve(learners, config, self.n_sessions)
        for a in self.assignments:
            for method in ("act", "update", "state_dict", "load_state_dict"):
                if not callable(getattr(a.learner, method, None)):
                    raise ValueError(f"learner for {a.name} has no {method}() method; see "
                                     "agents.base.Learner")
        self.consensus = consensus
        self.world = World(config, n_sessions=self.n_sessions)
        self.world.reset(self.run.seed)
        self._builtin_rng = np.random.default_rng([self.run.seed, 1])
        self.steps = 0  # env steps (session-steps)
        self.world_steps = 0
        self._ep_returns = {r: collections.deque(maxlen=100) for r in ROLES}
        self._ep_lengths = {r: collections.deque(maxlen=100) for r in ROLES}
        self._prov_ret = np.zeros(config.n_providers)
        self._user_ret = np.zeros(config.n_user_agents)
        self._user_len = np.zeros(config.n_user_agents, np.int64)
        self._train_metrics: dict[str, float] = {}
        self._next_eval = self.run.eval_every or None
        self._next_ckpt = self.run.checkpoint_every or None
        self._next_log = self.run.log_every
        self.eval_history: list[dict[str, float]] = []
        self._stop = False
        self.run_dir = Path(run_dir) if run_dir is not None else tags.make_run_dir(
            self.run.run_root, self.run.scenario, self.run.algo, self.run.seed)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.logger = tags.make_logger(self.run_dir, stdout=self.run.stdout_log)
        tags.save_config(self.run_dir, {
            "env": config.to_dict(), "run": dataclasses.asdict(self.run),
            "learners": {a.name: {"type": type(a.learner).__name__, "role": a.role,
                                  "agents": a.rows.tolist()} for a in self.assignments},
        }, self.logger)
        self._t0 = time.perf_counter()
        self._t0_steps = 0

    # ------------------------------------------------------------------ acting
    def _by_role(self, role: str) -> list[_Assignment]:
        return [a for a in self.assignments if a.role == role]

    def _context(self, world: World, rows: np.ndarray) -> ActContext:
        return ActContext(world, rows, world.sessions.user[rows].copy(),
                          world.candidates.item_id[rows].copy())

    def _act(self, world: World, rec_obs: np.ndarray, prov_obs: np.ndarray, explore: bool,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list]:
        cfg = self.config
        n = world.n_sessions
        slates = np.empty((n, cfg.slate_size), np.int64)
        covered = np.zeros(n, bool)
        contexts = []
        for a in self._by_role("recommender"):
            ctx = self._context(world, a.rows)
            act = np.asarray(a.learner.act(rec_obs[a.rows], ctx, explore=explore))
            slates[a.rows] = act.reshape(a.rows.size, cfg.slate_size)
            covered[a.rows] = True
            contexts.append((a, ctx))
        if not covered.all():
            free = np.flatnonzero(~covered)
            slates[free] = np.argsort(rng.random((free.size, cfg.n_candidates)), axis=1)[
                :, : cfg.slate_size]
        publish = np.zeros(cfg.n_providers, np.int64)
        for a in self._by_role("provider"):
            publish[a.rows] = np.asarray(a.learner.act(prov_obs[a.rows], None,
                                                       explore=explore)).reshape(-1)
        return slates, publish, contexts

    def _user_turns(self, world: World, slates: np.ndarray, rec_obs: np.ndarray,
                    explore: bool) -> tuple[np.ndarray | None, dict[str, Any] | None]:
        """User agents in session choose; returns the world's choice_override and the turn."""
        n_ua = self.config.n_user_agents
        groups = self._by_role("user")
        if n_ua == 0 or not groups:
            return None, None
        slot = aec_lib.sessions_of_users(world, n_ua)
        override = np.full(world.n_sessions, -2, np.int64)
        turn = {"users": [], "obs": [], "action": [], "slot": []}
        for a in groups:
            rows = a.rows[slot[a.rows] >= 0]
            if rows.size == 0:
                continue
            s = slot[rows]
            obs = aec_lib.user_observations(world, rows, s, slates[s], np.ones(rows.size, bool),
                                            rec_obs)
            act = np.asarray(a.learner.act(obs, None, explore=explore)).reshape(-1)
            k = self.config.slate_size
            empty = repeated_mask(slates[s])
            pos = np.where(act >= k, -1, act)
            pos = np.where((pos >= 0) & empty[np.arange(rows.size), np.maximum(pos, 0)], -1, pos)
            override[s] = pos
            turn["users"].append(rows)
            turn["obs"].append(obs)
            turn["action"].append(act)
            turn["slot"].append(s)
        if not turn["users"]:
            return override, None
        return override, {k: np.concatenate(v) for k, v in turn.items()}

    # ------------------------------------------------------------------ one step
    def _step(self) -> None:
        world, cfg, run = self.world, self.config, self.run
        rec_obs = world.recommender_obs()
        prov_obs = world.provider_obs()
        slates, publish, contexts = self._act(world, rec_obs, prov_obs, True, self._builtin_rng)
        override, turn = self._user_turns(world, slates, rec_obs, True)
        res = world.step(slates, publish, override)
        next_obs = world.recommender_obs()
        learn_next = next_obs.copy()
        ended = res.session_ended.copy()
        learn_next[ended] = res.terminal_obs
        truncated = ~ended & (world.sessions.steps >= run.max_session_steps)
        if truncated.any():
            learn_next[truncated] = next_obs[truncated]
            ended_ret = world.sessions.ret[truncated].copy()
            ended_len = world.sessions.steps[truncated].copy()
            world.restart_sessions(truncated)
            self._ep_returns["recommender"].extend(ended_ret.tolist())
            self._ep_lengths["recommender"].extend(ended_len.tolist())
        self._ep_returns["recommender"].extend(res.session_return[ended].tolist())
        self._ep_lengths["recommender"].extend(res.session_length[ended].tolist())
        for a, ctx in contexts:
            r = a.rows
            batch = Transition(rec_obs[r], slates[r], res.reward[r], learn_next[r], ended[r],
                               truncated[r], res.choice[r], ctx)
            self._record(a, a.learner.update(batch))
        if cfg.n_providers:
            self._provider_update(prov_obs, publish, res)
        if turn is not None:
            self._user_update(turn, res)
        if self.consensus is not None:
            self.consensus.after_update(self.assignments, self.logger)
        self.world_steps += 1
        self.steps += world.n_sessions

    def _provider_update(self, prov_obs: np.ndarray, publish: np.ndarray, res) -> None:
        run = self.run
        self._prov_ret += res.provider_reward
        trunc_now = (self.world_steps + 1) % run.provider_episode_steps == 0
        next_prov = self.world.provider_obs()
        for a in self._by_role("provider"):
            r = a.rows
            n = r.size
            batch = Transition(prov_obs[r], publish[r], res.provider_reward[r], next_prov[r],
                               np.zeros(n, bool), np.full(n, trunc_now), np.full(n, -1), None)
            self._record(a, a.learner.update(batch))
        if trunc_now:
            self._ep_returns["provider"].extend(self._prov_ret.tolist())
            self._ep_lengths["provider"].extend([run.provider_episode_steps] * self._prov_ret.size)
            self._prov_ret[:] = 0

    def _user_update(self, turn: dict[str, Any], res) -> None:
        """User transitions: the reward is the user's utility; the next observation is the
        user's own state right after the step with no slate shown yet (the next slate is not
        known until the recommender acts); terminated when the user's session ended."""
        users, slot = turn["users"], turn["slot"]
        reward = res.user_utility[slot]
        ended = res.session_ended[slot]
        world = self.world
        now = aec_lib.sessions_of_users(world, self.config.n_user_agents)[users]
        next_obs = aec_lib.user_observations(world, users, now, np.zeros((users.size,
                                             self.config.slate_size), np.int64),
                                             np.zeros(users.size, bool))
        self._user_ret[users] += reward
        self._user_len[users] += 1
        for a in self._by_role("user"):
            mine = np.isin(users, a.rows)
            if not mine.any():
                continue
            n = int(mine.sum())
            batch = Transition(turn["obs"][mine], turn["action"][mine], reward[mine],
                               next_obs[mine], ended[mine], np.zeros(n, bool), np.full(n, -1))
            self._record(a, a.learner.update(batch))
        done = users[ended]
        self._ep_returns["user"].extend(self._user_ret[done].tolist())
        self._ep_lengths["user"].extend(self._user_len[done].tolist())
        self._user_ret[done] = 0
        self._user_len[done] = 0

    def _record(self, a: _Assignment, metrics: dict[str, float] | None) -> None:
        """Keep a learner's latest training metrics under SB3's tags (role suffix; with
        several learners in one role, ``/<learner name>`` too)."""
        if not metrics:
            return
        several = sum(x.role == a.role for x in self.assignments) > 1
        for k, v in metrics.items():
            key = tags.role_tag(k, a.role)
            self._train_metrics[f"{key}/{a.name}" if several else key] = float(v)

    # ------------------------------------------------------------------ logging
    def _dump(self) -> None:
        lg = self.logger
        for role in ROLES:
            if self._ep_returns[role]:
                lg.record(tags.role_tag(tags.EP_REW_MEAN, role), float(np.mean(self._ep_returns[role])))
                lg.record(tags.role_tag(tags.EP_LEN_MEAN, role), float(np.mean(self._ep_lengths[role])))
        for k, v in self._train_metrics.items():
            lg.record(k, v)
        for k, v in self.world.metrics().items():
            lg.record(tags.ENV_PREFIX + k, v)
        dt = time.perf_counter() - self._t0
        if dt > 0:
            lg.record(tags.TIME_FPS, int((self.steps - self._t0_steps) / dt))
        lg.record("time/total_timesteps", self.steps)
        lg.dump(self.steps)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, seeds: tuple[int, ...] | None = None, steps: int | None = None) -> dict:
        """Run every learner without exploration on held-out world seeds.

        Which sessions count: every session that *starts* in the first ``steps`` world steps
        (all slots start one at step 0), each followed to its end. Counting the sessions that
        *end* inside a fixed window instead drops the long sessions still running at its end,
        so the mean return depended on the window's length (on ``default`` with 8 slots and
        cohort-skewed users, random's read 66.4 over a 100-step window and 76.4 over 200;
        counted this way it reads 70.0 and 72.1). Sessions still running
        ``max(4 * steps, 1000)`` world steps after the window are dropped and counted in
        ``censored_sessions``.

        Returns:
            ``mean_reward`` (mean recommender session return over the counted sessions),
            ``mean_ep_length``, per-seed means (``per_seed_reward``), ``sessions`` and
            ``censored_sessions`` (totals over seeds), and the world metrics averaged over
            seeds (``env/...``, over every world step run).
        """
        seeds = seeds if seeds is not None else self.run.eval_seeds
        steps = steps or self.run.eval_steps
        per_seed, lengths, metrics = [], [], []
        n_sessions = censored = 0
        for seed in seeds:
            world = World(self.config, n_sessions=self.n_sessions)
            world.reset(seed)
            rng = np.random.default_rng([seed, 2])
            rets: list[float] = []
            lens: list[int] = []
            counting = np.ones(self.n_sessions, bool)  # the slot's session started in time
            t = 0
            while t < steps or counting.any():
                if t >= steps + max(4 * steps, 1000):
                    censored += int(counting.sum())
                    break
                rec_obs = world.recommender_obs()
                slates, publish, _ = self._act(world, rec_obs, world.provider_obs(), False, rng)
                override, _ = self._user_turns(world, slates, rec_obs, False)
                res = world.step(slates, publish, override)
                take = res.session_ended & counting
                rets += res.session_return[take].tolist()
                lens += res.session_length[take].tolist()
                t += 1
                if t >= steps:  # sessions starting from now on are not counted
                    counting &= ~res.session_ended
            n_sessions += len(rets)
            per_seed.append(float(np.mean(rets)) if rets else float("nan"))
            lengths.append(float(np.mean(lens)) if lens else float("nan"))
            metrics.append(world.metrics())
        out = {"mean_reward": _nanmean(per_seed), "mean_ep_length": _nanmean(lengths),
               "per_seed_reward": per_seed, "sessions": n_sessions,
               "censored_sessions": censored}
        for k in metrics[0]:
            out["env/" + k] = _nanmean([m[k] for m in metrics])
        return out

    def _eval_and_log(self) -> dict:
        ev = self.evaluate()
        ev["step"] = self.steps
        self.eval_history.append(ev)
        self.logger.record(tags.EVAL_MEAN_REWARD, ev["mean_reward"])
        self.logger.record(tags.EVAL_MEAN_EP_LENGTH, ev["mean_ep_length"])
        self.logger.record("eval/sessions", ev["sessions"])
        if ev["censored_sessions"]:
            self.logger.record("eval/censored_sessions", ev["censored_sessions"])
        for k, v in ev.items():
            if k.startswith("env/"):
                self.logger.record("eval/" + k[4:], v)
        return ev

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """World, learners and counters: everything needed to resume bit for bit."""
        return {
            "format": 1,
            "world": self.world.state_dict(),
            "learners": {a.name: a.learner.state_dict() for a in self.assignments},
            "consensus": self.consensus.state_dict() if hasattr(self.consensus, "state_dict") else None,
            "runner": {
                "steps": self.steps, "world_steps": self.world_steps,
                "builtin_rng": self._builtin_rng.bit_generator.state,
                "prov_ret": self._prov_ret, "user_ret": self._user_ret, "user_len": self._user_len,
                "ep_returns": {r: list(v) for r, v in self._ep_returns.items()},
                "ep_lengths": {r: list(v) for r, v in self._ep_lengths.items()},
                "next_eval": self._next_eval or 0, "next_ckpt": self._next_ckpt or 0,
                "next_log": self._next_log,
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` (same config, learners and run settings)."""
        names = {a.name for a in self.assignments}
        if set(state["learners"]) != names:
            raise ValueError(f"checkpoint has learners {sorted(state['learners'])}, this runner "
                             f"has {sorted(names)}")
        self.world.load_state_dict(state["world"])
        for a in self.assignments:
            a.learner.load_state_dict(state["learners"][a.name])
        if state.get("consensus") is not None and hasattr(self.consensus, "load_state_dict"):
            self.consensus.load_state_dict(state["consensus"])
        r = state["runner"]
        self.steps, self.world_steps = int(r["steps"]), int(r["world_steps"])
        self._builtin_rng.bit_generator.state = r["builtin_rng"]
        self._prov_ret, self._user_ret = np.array(r["prov_ret"]), np.array(r["user_ret"])
        self._user_len = np.array(r["user_len"])
        for role in ROLES:
            self._ep_returns[role].clear()
            self._ep_returns[role].extend(r["ep_returns"][role])
            self._ep_lengths[role].clear()
            self._ep_lengths[role].extend(r["ep_lengths"][role])
        self._next_eval = r["next_eval"] or None
        self._next_ckpt = r["next_ckpt"] or None
        self._next_log = r["next_log"]
        self._t0_steps = self.steps

    def save(self, path: str | Path | None = None) -> Path:
        """Write a checkpoint atomically (default ``<run_dir>/checkpoint.pt``)."""
        return save_checkpoint(path or self.run_dir / CHECKPOINT_NAME, self.state_dict())

    def resume(self, path: str | Path | None = None) -> None:
        """Load a checkpoint (default ``<run_dir>/checkpoint.pt``) and continue from it."""
        self.load_state_dict(load_checkpoint(path or self.run_dir / CHECKPOINT_NAME))

    # ------------------------------------------------------------------ main loop
    def train(self, total_steps: int | None = None) -> dict[str, Any]:
        """Train until ``total_steps`` env steps (default ``run.total_steps``) have been taken
        in total (a resumed runner continues from where it stopped).

        Returns:
            ``{"steps", "run_dir", "eval" (last evaluation), "interrupted"}``.
        """
        total = self.run.total_steps if total_steps is None else total_steps
        previous = signal.getsignal(signal.SIGINT)

        def on_sigint(signum, frame):  # finish the step, checkpoint, stop
            self._stop = True

        try:
            signal.signal(signal.SIGINT, on_sigint)
        except ValueError:  # not the main thread: no handler, Ctrl-C raises as usual
            previous = None
        bar = tqdm(total=total, initial=self.steps, unit="step", disable=not self.run.progress,
                   desc=self.run_dir.name, dynamic_ncols=True)
        self._t0, self._t0_steps = time.perf_counter(), self.steps
        last_eval: dict[str, Any] | None = None
        try:
            if self.run.eval_at_start and self.steps == 0 and not self.eval_history:
                last_eval = self._eval_and_log()
                self._dump()
            while self.steps < total and not self._stop:
                self._step()
                bar.update(self.world.n_sessions)
                if self._next_eval is not None and self.steps >= self._next_eval:
                    last_eval = self._eval_and_log()
                    self._next_eval += self.run.eval_every
                    bar.set_postfix(eval=f"{last_eval['mean_reward']:.1f}")
                if self.steps >= self._next_log:
                    self._dump()
                    self._next_log += self.run.log_every
                if self._next_ckpt is not None and self.steps >= self._next_ckpt:
                    self.save()
                    self._next_ckpt += self.run.checkpoint_every
            interrupted = self._stop
            if not interrupted:
                if self.eval_history and self.eval_history[-1]["step"] == self.steps:
                    last_eval = self.eval_history[-1]  # already evaluated at this step
                else:
                    last_eval = self._eval_and_log()
            self._dump()
            if self.run.save_checkpoints:
                self.save()
        finally:
            bar.close()
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        if interrupted:
            if self.run.save_checkpoints:
                log.warning("interrupted at %d steps; checkpoint saved in %s", self.steps,
                            self.run_dir)
            else:
                log.warning("interrupted at %d steps; save_checkpoints=False, nothing saved",
                            self.steps)
        return {"steps": self.steps, "run_dir": str(self.run_dir), "eval": last_eval,
                "interrupted": interrupted}

    def close(self) -> None:
        """Flush and close the logger."""
        self.logger.close()
