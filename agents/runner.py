"""Multi-agent runner: agent ids -> learners, training through the one rollout loop
(:class:`agents.rollout.Rollout`), evaluation (:func:`agents.evaluation.evaluate`),
callbacks, TensorBoard logging with SB3's tags, and atomic checkpoints that resume bit for bit.

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
``state_dict``, the callbacks' state and the runner's counters; :meth:`Runner.resume` continues
exactly as an uninterrupted run would, in the same run directory (``progress.csv`` keeps its
rows). Ctrl-C (SIGINT) stops at the end of the current step and writes a checkpoint first.
Callbacks (:mod:`agents.callbacks`, in the style of SB3's ``BaseCallback``) hook into training;
the consensus step is one.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from agents import logger as tags
from agents.callbacks import Callback
from agents.checkpoint import load_checkpoint, remove_stale_temp, save_checkpoint
from agents.evaluation import evaluate
from agents.rollout import ROLES, TRAIN_STREAM, Rollout, assign
from recsim_env.config import EnvConfig
from recsim_env.content import ContentEncoder
from recsim_env.world import World

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
REPLAY_KEY = "replay"
"""The entry of a learner's ``state_dict`` holding its replay buffer (DQN, SlateQ), left out
of light checkpoints."""


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
        light_checkpoints: leave the learners' replay buffers out of checkpoints (a DQN's
            is hundreds of MB; what remains is a few MB, enough to evaluate). A run resumed
            from one refills its buffers from empty, so it no longer matches an uninterrupted
            run bit for bit.
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
    light_checkpoints: bool = False
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
        need(len(self.eval_seeds) >= 1, "eval_seeds",
             "at least one world seed (the run ends with an evaluation)")
        need(self.seed not in self.eval_seeds, "eval_seeds",
             f"disjoint from the training seed {self.seed}")
        for name in ("eval_every", "checkpoint_every"):
            need(getattr(self, name) >= 0, name, ">= 0")
        for name in ("eval_steps", "max_session_steps", "provider_episode_steps", "log_every"):
            need(getattr(self, name) >= 1, name, ">= 1")
        for name in ("save_checkpoints", "light_checkpoints", "eval_at_start", "progress",
                     "stdout_log"):
            need(isinstance(getattr(self, name), bool), name, "a bool")
        need(self.save_checkpoints or self.checkpoint_every == 0, "checkpoint_every",
             "0 when save_checkpoints is False")


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
        run_dir: write here instead of a new ``run_root/<scenario>__<algo>__<seed>__<time>``
            (an existing run directory keeps its ``progress.csv`` rows).
        callbacks: :class:`agents.callbacks.Callback` objects (a
            :class:`agents.consensus.ConsensusWrapper` is one).
        encoder: a content encoder shared with other worlds, used by the training world and
            every evaluation world (``World(..., encoder=)``); ``None``: each builds its own.
    """

    def __init__(self, config: EnvConfig, learners: dict[str, Any], run: RunConfig | None = None,
                 *, run_dir: str | Path | None = None,
                 callbacks: Sequence[Callback] = (),
                 encoder: ContentEncoder | None = None) -> None:
        self.config = config
        self.encoder = encoder
        self.run = run or RunConfig()
        self.n_sessions = self.run.n_sessions or config.n_recommenders
        self.assignments = assign(learners, config, self.n_sessions)
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise ValueError(f"callbacks must be agents.callbacks.Callback objects, got "
                                 f"{type(cb).__name__}")
        self.world = World(config, n_sessions=self.n_sessions, encoder=encoder)
        self.world.reset(self.run.seed)
        self.rollout = Rollout(self.world, self.assignments,
                               np.random.default_rng([self.run.seed, TRAIN_STREAM]),
                               max_session_steps=self.run.max_session_steps,
                               provider_episode_steps=self.run.provider_episode_steps)
        self.steps = 0  # env steps (session-steps)
        self._ep_returns = {r: collections.deque(maxlen=100) for r in ROLES}
        self._ep_lengths = {r: collections.deque(maxlen=100) for r in ROLES}
        self._train_metrics: dict[str, float] = {}
        self._next_eval = self.run.eval_every or None
        self._next_ckpt = self.run.checkpoint_every or None
        self._next_log = self.run.log_every
        self.eval_history: list[dict[str, Any]] = []
        self._stop = False
        self._last_dump = -1
        self.run_dir = Path(run_dir) if run_dir is not None else tags.make_run_dir(
            self.run.run_root, self.run.scenario, self.run.algo, self.run.seed)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temp(self.run_dir / CHECKPOINT_NAME)
        self.logger = tags.make_logger(self.run_dir, stdout=self.run.stdout_log)
        tags.save_config(self.run_dir, {
            "env": config.to_dict(), "run": dataclasses.asdict(self.run),
            "learners": {a.name: {"type": type(a.learner).__name__, "role": a.role,
                                  "agents": a.rows.tolist()} for a in self.assignments},
        }, self.logger)
        self._t0 = time.perf_counter()
        self._t0_steps = 0
        for cb in self.callbacks:
            cb.init_callback(self)

    @property
    def world_steps(self) -> int:
        """World steps taken in training."""
        return self.rollout.t

    # ------------------------------------------------------------------ one step
    def _step(self) -> bool:
        """One update round; False when a callback asks to stop."""
        out = self.rollout.step(explore=True, learn=True)
        rec = self._ep_returns["recommender"], self._ep_lengths["recommender"]
        # time-limit ends first, then users who left, as they happened within the step
        for mask in (out.truncated, out.terminated):
            if mask.any():
                rec[0].extend(out.episode_return[mask].tolist())
                rec[1].extend(out.episode_length[mask].tolist())
        for role, eps in (("provider", out.provider_episodes), ("user", out.user_episodes)):
            if eps is not None and eps[0].size:
                self._ep_returns[role].extend(eps[0].tolist())
                self._ep_lengths[role].extend(eps[1].tolist())
        several = collections.Counter(a.role for a in self.assignments)
        for a in self.assignments:
            for k, v in out.metrics.get(a.name, {}).items():
                key = tags.role_tag(k, a.role)
                self._train_metrics[f"{key}/{a.name}" if several[a.role] > 1 else key] = float(v)
        self.steps += self.world.n_sessions
        go_on = True
        for cb in self.callbacks:
            go_on = (cb.on_step(out) is not False) and go_on
        return go_on

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
        self._last_dump = self.steps

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, seeds: tuple[int, ...] | None = None, steps: int | None = None) -> dict:
        """Run every learner without exploration on held-out world seeds.

        Counted as everywhere in the project (:func:`agents.evaluation.evaluate`): every
        session that *starts* in the first ``steps`` world steps, each followed to its end.

        Returns:
            ``mean_reward`` (mean over seeds of the seed's mean recommender session return),
            ``mean_ep_length``, per-seed means (``per_seed_reward``), ``sessions`` and
            ``censored_sessions`` (totals over seeds), and the world metrics averaged over
            seeds (``env/...``, over every world step run).
        """
        seeds = seeds if seeds is not None else self.run.eval_seeds
        steps = steps or self.run.eval_steps
        per_seed = [evaluate(self.assignments, self.config, seed=int(s),
                             n_sessions=self.n_sessions, steps=steps,
                             max_session_steps=self.run.max_session_steps, ground_truth=False,
                             encoder=self.encoder)
                    for s in seeds]
        out = {"mean_reward": _nanmean([m["return"] for m in per_seed]),
               "mean_ep_length": _nanmean([m["session_length"] for m in per_seed]),
               "per_seed_reward": [m["return"] for m in per_seed],
               "sessions": int(sum(m["sessions"] for m in per_seed)),
               "censored_sessions": int(sum(m["censored_sessions"] for m in per_seed))}
        for k in per_seed[0]:
            if k.startswith("env/"):
                out[k] = _nanmean([m[k] for m in per_seed])
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
        for cb in self.callbacks:
            cb.on_evaluation(ev)
        return ev

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """World, learners, callbacks and counters: everything needed to resume bit for bit."""
        return {
            "format": 2,
            "world": self.world.state_dict(),
            "learners": {a.name: self._learner_state(a.learner) for a in self.assignments},
            "callbacks": [cb.state_dict() for cb in self.callbacks],
            "rollout": self.rollout.state_dict(),
            "runner": {
                "steps": self.steps,
                "ep_returns": {r: list(v) for r, v in self._ep_returns.items()},
                "ep_lengths": {r: list(v) for r, v in self._ep_lengths.items()},
                "next_eval": self._next_eval or 0, "next_ckpt": self._next_ckpt or 0,
                "next_log": self._next_log,
                "eval_history": [{k: v for k, v in e.items()} for e in self.eval_history],
            },
        }

    def _learner_state(self, learner: Any) -> dict[str, Any]:
        state = learner.state_dict()
        if self.run.light_checkpoints:
            state.pop(REPLAY_KEY, None)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` (same config, learners, callbacks and run settings)."""
        if state.get("format") != 2:
            raise ValueError(f"checkpoint format {state.get('format')!r} is not supported by "
                             "this version (expected 2); retrain or use the version that wrote it")
        names = {a.name for a in self.assignments}
        if set(state["learners"]) != names:
            raise ValueError(f"checkpoint has learners {sorted(state['learners'])}, this runner "
                             f"has {sorted(names)}")
        if len(state["callbacks"]) != len(self.callbacks):
            raise ValueError(f"checkpoint has {len(state['callbacks'])} callback state(s), this "
                             f"runner has {len(self.callbacks)} callback(s)")
        self.world.load_state_dict(state["world"])
        for a in self.assignments:
            a.learner.load_state_dict(state["learners"][a.name])
        for cb, cb_state in zip(self.callbacks, state["callbacks"]):
            if cb_state is not None:
                cb.load_state_dict(cb_state)
        self.rollout.load_state_dict(state["rollout"])
        r = state["runner"]
        self.steps = int(r["steps"])
        for role in ROLES:
            self._ep_returns[role].clear()
            self._ep_returns[role].extend(r["ep_returns"][role])
            self._ep_lengths[role].clear()
            self._ep_lengths[role].extend(r["ep_lengths"][role])
        self._next_eval = r["next_eval"] or None
        self._next_ckpt = r["next_ckpt"] or None
        self._next_log = r["next_log"]
        self._last_dump = self.steps  # the checkpoint was written after this step's row
        self.eval_history = list(r.get("eval_history", []))
        self._t0_steps = self.steps

    def save(self, path: str | Path | None = None) -> Path:
        """Write a checkpoint atomically (default ``<run_dir>/checkpoint.pt``)."""
        return save_checkpoint(path or self.run_dir / CHECKPOINT_NAME, self.state_dict())

    def load(self, path: str | Path | None = None) -> None:
        """Load a checkpoint (default ``<run_dir>/checkpoint.pt``) without training.

        Rows of ``progress.csv`` logged after the checkpoint was written (by a run killed
        later) are dropped, so that the resumed run's rows follow on without duplicates.
        """
        path = Path(path or self.run_dir / CHECKPOINT_NAME)
        self.load_state_dict(load_checkpoint(path))
        self.logger.close()
        tags.truncate_progress(self.run_dir, self.steps)
        self.logger = tags.make_logger(self.run_dir, stdout=self.run.stdout_log)

    def resume(self, path: str | Path | None = None, total_steps: int | None = None
               ) -> dict[str, Any]:
        """Load a checkpoint (default ``<run_dir>/checkpoint.pt``) and continue training to
        ``total_steps`` (default ``run.total_steps``). Returns what :meth:`train` returns."""
        self.load(path)
        return self.train(total_steps)

    # ------------------------------------------------------------------ main loop
    def train(self, total_steps: int | None = None) -> dict[str, Any]:
        """Train until ``total_steps`` env steps (default ``run.total_steps``) have been taken
        in total (a resumed runner continues from where it stopped).

        Ctrl-C (SIGINT) stops at the end of the current step: the run is checkpointed (when
        ``save_checkpoints``) and reported as interrupted, unless that step was the last one.

        Returns:
            ``{"steps", "run_dir", "eval" (last evaluation), "interrupted"}``.
        """
        total = self.run.total_steps if total_steps is None else total_steps
        self._stop = False
        previous = signal.getsignal(signal.SIGINT)

        def on_sigint(signum, frame):  # finish the step, checkpoint, stop
            self._stop = True

        try:
            signal.signal(signal.SIGINT, on_sigint)
        except ValueError:  # not the main thread: no handler, Ctrl-C raises as usual
            previous = None
        bar = tqdm(total=total, initial=min(self.steps, total), unit="step",
                   disable=not self.run.progress, desc=self.run_dir.name, dynamic_ncols=True)
        self._t0, self._t0_steps = time.perf_counter(), self.steps
        last_eval: dict[str, Any] | None = None
        stopped_by_callback = False
        for cb in self.callbacks:
            cb.on_training_start()
        try:
            if self.run.eval_at_start and self.steps == 0 and not self.eval_history:
                last_eval = self._eval_and_log()
                self._dump()
            while self.steps < total and not self._stop:
                if not self._step():
                    stopped_by_callback = True
                bar.update(self.world.n_sessions)
                if self._next_eval is not None and self.steps >= self._next_eval:
                    last_eval = self._eval_and_log()
                    self._next_eval += self.run.eval_every
                    bar.set_postfix(eval=f"{last_eval['mean_reward']:.1f}")
                if self.steps >= self._next_log:
                    if self.steps < total:  # the last step's row is written once, below
                        self._dump()
                    while self._next_log <= self.steps:
                        self._next_log += self.run.log_every
                if self._next_ckpt is not None and self.steps >= self._next_ckpt:
                    self.save()
                    self._next_ckpt += self.run.checkpoint_every
                if stopped_by_callback:
                    break
            # a Ctrl-C during the last step does not make a finished run "interrupted"
            interrupted = self._stop and self.steps < total
            if not interrupted:
                if self.eval_history and self.eval_history[-1]["step"] == self.steps:
                    last_eval = self.eval_history[-1]  # already evaluated at this step
                else:
                    last_eval = self._eval_and_log()
            if self._last_dump != self.steps or self.logger.name_to_value:
                self._dump()  # one row per step: skip when this step was just logged
            if self.run.save_checkpoints:
                self.save()
        finally:
            bar.close()
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
            for cb in self.callbacks:
                cb.on_training_end()
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
