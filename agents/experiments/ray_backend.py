"""Ray backend of the experiments: the suite's runs as Ray tasks, and Tune sweeps.

Needs the optional extra ``ray`` (``pip install 'recsim-marl[ray]'``); Ray is imported only
inside these functions, so the rest of the project never needs it.

* :func:`run_pool_ray` is :func:`agents.experiments.common.run_pool` on a Ray cluster (one
  task per job, one CPU each): ``recsim-marl benchmark --backend ray [--address ADDR]``. Only
  the pool changes: every job carries its own seeds, so the results equal the local backend's.
* :func:`run_sweep` is ``recsim-marl sweep``: a suite's protocol (scenario, budget,
  evaluation, reporting seeds) over a grid of one learner's hyperparameters, one Tune trial
  per (grid point, seed). A trial is :func:`agents.experiments.suite.run_one`, the suite's own
  run, with a callback that reports every learning-curve evaluation to Tune
  (``curve_return`` at ``env_steps``), so a scheduler such as ASHA can stop it early; its
  last report holds the suite's metrics on the held-out world. The sweep writes
  ``results.json``, ``results.csv`` and ``results.md`` with the suite's columns: one row per
  grid point, mean and 95% CI over seeds.

Clusters: start a head with ``ray start --head`` (see README, "Scaling out"), join workers
with ``ray start --address HEAD:6379``, and give ``--address HEAD:6379`` (or ``auto``).
Every node needs the project installed (``pip install -e '.[ray]'``) and the working
directory at the same path for the run folders to land beside the results.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import itertools
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agents.callbacks import Callback
from agents.experiments.common import THREAD_VARS

log = logging.getLogger(__name__)

__all__ = ["THREAD_ENV_VARS", "TuneReporter", "init_ray", "parse_grid", "ray_cpus",
           "run_pool_ray", "run_sweep", "sweep_trial"]

THREAD_ENV_VARS = dict.fromkeys(THREAD_VARS, "1")
"""Environment of every Ray worker: one BLAS/OpenMP thread (NOTES.md, Threads)."""

MISSING_RAY = ("the ray backend needs Ray: pip install 'recsim-marl[ray]' (the optional extra "
               "ray[rllib,tune])")


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as e:
        raise ImportError(f"{MISSING_RAY}; importing it failed: {e}") from e
    return ray


def init_ray(address: str | None = None, *, num_cpus: int | None = None,
             object_store_memory: int | None = None) -> Any:
    """Connect to Ray once per process: to the cluster at ``address`` (``auto``: the one
    started on this machine by ``ray start``; default ``$RAY_ADDRESS``), or a new local
    instance with ``num_cpus`` CPUs (default: all) and ``object_store_memory`` bytes of
    object store (default: Ray's).
    Reuses an existing connection. Workers get one thread each (:data:`THREAD_ENV_VARS`); no
    dashboard.

    Returns:
        the ``ray`` module.
    """
    ray = _import_ray()
    if ray.is_initialized():
        return ray
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs: dict[str, Any] = dict(runtime_env={"env_vars": dict(THREAD_ENV_VARS)},
                                  logging_level=logging.WARNING, log_to_driver=False)
    if address:
        ray.init(address=address, **kwargs)
    else:
        # "local": always a new instance (not a cluster some `ray start` left on the machine)
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False,
                 object_store_memory=object_store_memory, **kwargs)
    return ray


def ray_cpus() -> int:
    """CPUs of the connected Ray cluster (at least 1)."""
    ray = _import_ray()
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def _call_in(fn: Callable[[Any], Any], job: Any, cwd: str,
             initializer: Callable[..., Any] | None, initargs: tuple) -> Any:
    """One job in a Ray worker: threads pinned, the driver's working directory when this
    node has it (relative run folders land where the local backend puts them)."""
    from agents.experiments.common import _init_worker_with

    if os.path.isdir(cwd):
        os.chdir(cwd)
    _init_worker_with(initializer, initargs)
    return fn(job)


def run_pool_ray(fn: Callable[[Any], Any], jobs: Sequence[Any], *, workers: int | None = None,
                 address: str | None = None, progress: bool = True, desc: str = "runs",
                 on_result: Callable[[Any], None] | None = None,
                 initializer: Callable[..., Any] | None = None,
                 initargs: tuple = ()) -> list[Any]:
    """``[fn(job) for job in jobs]`` as Ray tasks (one CPU each), results in job order; the
    same contract as :func:`agents.experiments.common.run_pool`.

    Args:
        workers: at most this many jobs in flight (default: the cluster's CPUs).
        address: the cluster (see :func:`init_ray`); default a local instance.
    """
    from tqdm import tqdm

    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise ValueError(f"workers must be an int >= 1 or None, got {workers!r}")
    ray = init_ray(address)
    task = ray.remote(num_cpus=1, max_retries=0)(_call_in)
    limit = workers or ray_cpus()
    cwd = os.getcwd()
    out: list[Any] = [None] * len(jobs)
    pending: dict[Any, int] = {}
    queue = list(enumerate(jobs))[::-1]
    bar = tqdm(total=len(jobs), desc=f"{desc} (ray)", disable=not progress, dynamic_ncols=True)
    try:
        while queue or pending:
            while queue and len(pending) < limit:
                i, job = queue.pop()
                pending[task.remote(fn, job, cwd, initializer, initargs)] = i
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                i = pending.pop(ref)
                out[i] = ray.get(ref)
                if on_result is not None:
                    on_result(out[i])
                bar.update()
    finally:
        for ref in pending:  # an error or Ctrl-C: stop what is still running
            ray.cancel(ref, force=True)
        bar.close()
    return out


# --------------------------------------------------------------------------- sweeps
def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """``["lr=1e-3,3e-4", "batch_size=32,64"]`` -> ``{"lr": [0.001, 0.0003], ...}`` (values
    are TOML values, as with ``--set``).

    Raises:
        ValueError: an item without ``=`` or values, a key given twice, a value repeated.
    """
    import tomllib

    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or not raw.strip():
            raise ValueError(f"--grid expects KEY=V1,V2,... (e.g. lr=1e-3,3e-4), got {item!r}")
        if key in grid:
            raise ValueError(f"--grid: {key} is given twice")
        try:
            values = tomllib.loads(f"v = [{raw}]")["v"]
        except tomllib.TOMLDecodeError:
            values = [v.strip() for v in raw.split(",")]
        if len({repr(v) for v in values}) != len(values):
            raise ValueError(f"--grid: values of {key} repeat: {values}")
        grid[key] = values
    return grid


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values (one dict per point, keys in grid order)."""
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True))
            for combo in itertools.product(*(grid[k] for k in keys))]


def point_label(point: dict[str, Any]) -> str:
    """``lr=0.001 batch_size=32`` (``defaults`` for the empty point)."""
    return " ".join(f"{k}={v}" for k, v in point.items()) or "defaults"


def check_point(spec: Any, policy: str, scenario: str, point: dict[str, Any]) -> None:
    """Every key of ``point`` is a hyperparameter of ``policy`` on ``scenario`` with a value of
    the table's kind; else ``ValueError`` naming it."""
    from agents.cli import _kind, _same_kind

    table = spec.hparams(policy, scenario)
    for key, value in point.items():
        if key not in table:
            raise ValueError(f"--grid: {key} is not a hyperparameter of {policy} on "
                             f"{scenario}; known: {', '.join(sorted(table)) or 'none'}")
        if not _same_kind(table[key], value):
            raise ValueError(f"--grid: {key} must be {_kind(table[key])} (like "
                             f"{table[key]!r}), got {value!r}")


def trial_spec(spec: Any, point: dict[str, Any]) -> Any:
    """The suite spec of one grid point: its hyperparameters on top of the suite's."""
    return dataclasses.replace(spec, hparam_overrides={**spec.hparam_overrides, **point})


class TuneReporter(Callback):
    """Report every learning-curve evaluation of a run to Tune (``env_steps``,
    ``curve_return``, ``final`` False): the intermediate results a scheduler stops trials on.
    (Tune owns the key ``done``.)"""

    def on_evaluation(self, result: dict[str, Any]) -> None:  # noqa: D102
        from ray import tune

        tune.report({"env_steps": int(result["step"]),
                     "curve_return": float(result["mean_reward"]), "final": False})


def sweep_trial(config: dict[str, Any], spec: Any, scenario: str, policy: str) -> None:
    """One Tune trial: the suite's run of ``policy`` on ``scenario`` with seed
    ``config["seed"]`` and hyperparameters ``config["point"]``; run folders in the trial's
    directory, no progress bar or checkpoints. Its last report (``final`` True) holds the
    suite's metrics (``metrics/<name>``) and the whole run record (``record``)."""
    import torch
    from ray import tune

    from agents.experiments.suite import run_one

    torch.set_num_threads(1)
    point = dict(config["point"])
    runs_dir = Path(tune.get_context().get_trial_dir()) / "runs"
    rec = run_one(trial_spec(spec, point), scenario, policy, int(config["seed"]), runs_dir,
                  callbacks=[TuneReporter()])
    rec["point"] = point
    final = {"env_steps": int(rec.get("train_steps") or 0), "final": True, "record": rec}
    if rec.get("curve"):
        final["curve_return"] = float(rec["curve"][-1][1])
    final.update({f"metrics/{k}": float(v) for k, v in rec["metrics"].items()})
    tune.report(final)


def run_sweep(spec: Any, *, scenario: str, policy: str, grid: dict[str, list[Any]],
              out_dir: str | Path, runs_dir: str | Path, address: str | None = None,
              scheduler: str = "fifo", max_concurrent: int | None = None,
              progress: bool = True) -> dict[str, Any]:
    """Tune over ``grid`` x the suite's reporting seeds; writes ``out_dir/results.*``.

    Args:
        spec: a :class:`agents.experiments.suite.Suite` (protocol, budgets, seeds).
        scenario, policy: one scenario and one learned policy of it.
        grid: hyperparameter -> values (:func:`parse_grid`); ``{}`` runs the suite's own.
        out_dir: results folder (``results.json``, ``results.csv``, ``results.md``).
        runs_dir: Tune's storage (trial folders with the runs' TensorBoard curves).
        address: Ray cluster (default: a local instance).
        scheduler: ``fifo`` (every trial runs to its end) or ``asha`` (stops trials whose
            ``curve_return`` lags, at the learning-curve evaluations).
        max_concurrent: trials at once (default: the cluster's CPUs).

    Returns:
        ``{"rows", "records", "files", "seconds", "n_trials"}``.
    """
    from agents.experiments.suite import policy_kind

    if policy_kind(policy) != "learned":
        raise ValueError(f"policy: a sweep trains a learned policy, got {policy!r}")
    if scenario not in spec.scenarios:
        raise ValueError(f"scenario: {scenario!r} is not in suite {spec.name!r} "
                         f"({', '.join(spec.scenarios)})")
    if scheduler not in ("fifo", "asha"):
        raise ValueError(f"scheduler must be fifo or asha, got {scheduler!r}")
    spec.seed_plan.check_reporting(spec.seeds)
    points = grid_points(grid)
    for point in points:
        check_point(spec, policy, scenario, point)
    init_ray(address)
    from ray import tune

    out_dir, runs_dir = Path(out_dir), Path(runs_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    runs_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    sched = None
    if scheduler == "asha":
        from ray.tune.schedulers import ASHAScheduler

        steps = max(spec.budget(scenario, policy), 1)
        # max_t above the budget: ASHA ends a trial that reaches max_t, which would cut the
        # last report (the suite's metrics) off a trial that ran to its end
        sched = ASHAScheduler(time_attr="env_steps", max_t=2 * steps,
                              grace_period=max(steps // max(spec.curve_points, 1), 1),
                              reduction_factor=2)
    trainable = tune.with_resources(
        tune.with_parameters(sweep_trial, spec=spec, scenario=scenario, policy=policy),
        {"cpu": 1})
    tuner = tune.Tuner(
        trainable,
        param_space={"point": tune.grid_search(points), "seed": tune.grid_search(list(spec.seeds))},
        tune_config=tune.TuneConfig(metric="curve_return", mode="max", scheduler=sched,
                                    max_concurrent_trials=max_concurrent or ray_cpus()),
        run_config=tune.RunConfig(name=f"sweep_{spec.name}_{scenario}_{policy}",
                                  storage_path=str(runs_dir), verbose=1 if progress else 0,
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=None)))
    with contextlib.nullcontext() if progress else contextlib.redirect_stdout(io.StringIO()):
        grid_results = tuner.fit()  # Tune prints its summary box whatever its verbosity
    seconds = time.perf_counter() - t0
    records = [_trial_record(r, scenario, policy) for r in grid_results]
    rows = sweep_rows(records, points, scenario, policy)
    files = write_sweep(out_dir, spec, scenario, policy, grid, scheduler, rows, records, seconds)
    return {"rows": rows, "records": records, "files": files, "seconds": seconds,
            "n_trials": len(records)}


def _trial_record(result: Any, scenario: str, policy: str) -> dict[str, Any]:
    """A trial's run record; a trial stopped by the scheduler (or failed) gets NaN metrics
    and the reason in ``error``."""
    from agents.evaluation import METRIC_KEYS

    config = result.config
    last = result.metrics or {}
    if last.get("final") and isinstance(last.get("record"), dict):
        rec = dict(last["record"])
    else:
        reason = (f"{type(result.error).__name__}: {result.error}" if result.error
                  else f"stopped early by the scheduler at {last.get('env_steps', 0)} env steps")
        rec = {"scenario": scenario, "policy": policy, "seed": int(config["seed"]),
               "kind": "learned", "train_steps": int(last.get("env_steps") or 0), "curve": [],
               "run_dir": None, "error": reason, "point": dict(config["point"]),
               "metrics": {k: float("nan") for k in METRIC_KEYS}}
    rec["stopped_early"] = not last.get("final", False)
    return rec


def sweep_rows(records: list[dict[str, Any]], points: list[dict[str, Any]], scenario: str,
               policy: str) -> list[dict[str, Any]]:
    """One row per grid point: the suite's columns (mean and 95% CI over the seeds that ran
    to the end) plus ``point`` and ``label``."""
    from agents.experiments.suite import metric_row

    rows = []
    for point in points:
        recs = [r for r in records if r["point"] == point]
        ok = [r for r in recs if not r.get("error")]
        row = metric_row(scenario, policy, ok or recs, n_seeds=len(ok))
        row["policy"] = f"{policy} {point_label(point)}"
        row["point"] = point
        row["errors"] = "; ".join(sorted({r["error"] for r in recs if r.get("error")}))
        rows.append(row)
    return rows


def write_sweep(out_dir: Path, spec: Any, scenario: str, policy: str,
                grid: dict[str, list[Any]], scheduler: str, rows: list[dict[str, Any]],
                records: list[dict[str, Any]], seconds: float) -> list[str]:
    """``results.csv``, ``results.json`` and ``results.md`` of a sweep (the suite's formats:
    the same columns, one row per grid point)."""
    from agents.checkpoint import write_json
    from agents.experiments.suite import (
        CATALOG_COLUMNS,
        ENGAGEMENT_COLUMNS,
        csv_columns,
        markdown_table,
        write_csv,
    )

    write_csv(out_dir / "results.csv", rows)
    runs = sorted(({k: v for k, v in r.items() if k not in ("traceback", "hparams")}
                   for r in records), key=lambda r: (point_label(r["point"]), r["seed"]))
    spec_doc = {k: v for k, v in dataclasses.asdict(spec).items() if k != "seed_plan"}
    doc = {"suite": spec.name, "sweep": {"scenario": scenario, "policy": policy, "grid": grid,
                                         "scheduler": scheduler, "backend": "ray"},
           "spec": spec_doc, "seconds": seconds, "columns": csv_columns(), "rows": rows,
           "runs": runs, "hparams": spec.hparams(policy, scenario),
           "seeds": spec.seed_plan.to_dict()}
    write_json(out_dir / "results.json", doc, indent=None)
    stopped = sum(bool(r.get("stopped_early")) for r in records)
    lines = [f"# Sweep `{policy}` on `{scenario}` (suite `{spec.name}`)", "",
             f"{len(rows)} hyperparameter points x {len(spec.seeds)} reporting seeds "
             f"{list(spec.seeds)} = {len(records)} Ray Tune trials ({scheduler} scheduler, "
             f"{stopped} stopped early) in {seconds / 60:.1f} min; "
             f"{spec.budget(scenario, policy):,} training env steps each. Grid: "
             + ", ".join(f"`{k}` in {v}" for k, v in grid.items()) + ". Every other "
             "hyperparameter as in the suite; evaluation as in the suite (held-out world "
             "10000+seed). Mean ± 95% CI over the seeds that ran to the end; ‡: trials stopped "
             "early by the scheduler or failed (the reason is in `results.json`).", ""]
    lines += markdown_table(rows, ENGAGEMENT_COLUMNS) + [""]
    lines += markdown_table(rows, CATALOG_COLUMNS) + [""]
    (out_dir / "results.md").write_text("\n".join(lines) + "\n")
    return [str(out_dir / f) for f in ("results.csv", "results.json", "results.md")]


# --------------------------------------------------------------------------- RLlib
def train_ppo(env_config: dict[str, Any], *, iterations: int, num_env_runners: int = 0,
              seed: int = 0, checkpoint: str | Path | None = None, address: str | None = None,
              model_hidden: Sequence[int] | None = None,
              on_iteration: Callable[[dict[str, Any]], None] | None = None,
              **training: Any) -> dict[str, Any]:
    """RLlib PPO (new API stack) on :class:`recsim_env.rllib.RecSimMultiAgentEnv`, one
    policy per role (:func:`recsim_env.rllib.ppo_config`), for ``iterations`` iterations.

    Args:
        env_config: the env's options (``preset``, ``max_cycles``, config overrides).
        num_env_runners: remote env runners (0: sample in this process).
        seed: RLlib's seed.
        checkpoint: save the algorithm here at the end (``Algorithm.from_checkpoint`` reads
            it back).
        address: the Ray cluster (default: a local instance).
        model_hidden: hidden layer sizes of every policy (default RLlib's).
        on_iteration: called with each iteration's summary.
        **training: ``PPOConfig.training`` options.

    Returns:
        ``{"iterations": [{"iteration", "env_steps", "seconds", "steps_per_s", "return",
        "module_returns"}], "modules", "checkpoint"}``.
    """
    import torch

    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be an int >= 1, got {iterations!r}")
    torch.set_num_threads(1)  # the learner runs in this process
    init_ray(address)
    from recsim_env.rllib import ppo_config, register

    config = ppo_config(env_config, env_name=register(), num_env_runners=num_env_runners,
                        seed=seed, **training)
    if model_hidden is not None:
        config = config.rl_module(model_config={"fcnet_hiddens": list(model_hidden)})
    algo = config.build_algo()
    history = []
    try:
        for _ in range(iterations):
            t0 = time.perf_counter()
            result = algo.train()
            seconds = time.perf_counter() - t0
            runners = result.get("env_runners", {})
            steps = int(runners.get("num_env_steps_sampled", 0))
            row = {"iteration": int(result["training_iteration"]), "env_steps": steps,
                   "seconds": seconds, "steps_per_s": steps / seconds,
                   "return": float(runners.get("episode_return_mean", float("nan"))),
                   "module_returns": {k: float(v) for k, v in
                                      runners.get("module_episode_returns_mean", {}).items()}}
            history.append(row)
            if on_iteration is not None:
                on_iteration(row)
        saved = None
        if checkpoint is not None:
            saved = str(Path(checkpoint).resolve())
            algo.save(saved)
        modules = sorted(algo.config.policies)
    finally:
        algo.stop()
    return {"iterations": history, "modules": modules, "checkpoint": saved}
