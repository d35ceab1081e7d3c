"""What every experiment shares: seeds, the results root, the local process pool.

Seeds (:class:`SeedPlan`). An experiment names its **tuning seeds** (hyperparameters and
settings were chosen on them) and its **reporting seeds** (every number it reports comes from
them); the two are disjoint, both are written into ``results.json``, and an experiment refuses
to report on a seed listed for tuning. Each seed ``s`` gives three worlds, disjoint across
seeds and across roles:

* ``s`` (:data:`TRAIN`): the training world (and the learner's own seed);
* ``EVAL_OFFSET + s`` (:data:`EVAL`): the held-out evaluation world of the tables (the same
  for every policy, common random numbers);
* ``CURVE_OFFSET + s`` (:data:`CURVE`): the world of the learning curves.

Results go under one root, ``results/`` (:data:`RESULTS_ROOT`). A run writes a new folder,
``results/<experiment>-<YYYYmmdd-HHMMSS>/`` (:func:`new_results_dir`), unless it is given
``--out``: the committed folders (``results/full/``, ...) are only rewritten when asked.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["BACKENDS", "CURVE", "CURVE_OFFSET", "EVAL", "EVAL_OFFSET", "RESULTS_ROOT", "SEED_KEYS",
           "THREAD_VARS", "TRAIN", "SeedPlan", "init_worker", "new_results_dir", "run_pool"]

RESULTS_ROOT = Path("results")
"""Where every experiment writes (``results/<experiment>/``), relative to the working
directory."""



def new_results_dir(name: str, root: str | Path = RESULTS_ROOT) -> Path:
    """A folder that does not exist yet: ``<root>/<name>-<YYYYmmdd-HHMMSS>`` (``-2``, ``-3``,
    ... appended when a run in the same second took it). Not created.

    Runs write here by default so that nothing committed is overwritten unless ``--out``
    names it.
    """
    import time

    base = Path(root) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, k = base, 1
    while path.exists():
        k += 1
        path = base.with_name(f"{base.name}-{k}")
    return path


TRAIN, EVAL, CURVE = "train", "eval", "curve"
EVAL_OFFSET = 10_000
CURVE_OFFSET = 20_000
SEED_KEYS = {TRAIN: 0, EVAL: EVAL_OFFSET, CURVE: CURVE_OFFSET}
"""World seed of each role: ``offset + s`` for run seed ``s``."""
MAX_RUN_SEED = min(v for v in SEED_KEYS.values() if v > 0)
"""Run seeds stay below this, so the roles' worlds never overlap."""


def _seed_tuple(name: str, seeds: Iterable[int]) -> tuple[int, ...]:
    out = tuple(seeds)
    for s in out:
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < MAX_RUN_SEED:
            raise ValueError(f"{name}: every seed must be an int in [0, {MAX_RUN_SEED}), "
                             f"got {s!r}")
    if len(set(out)) != len(out):
        raise ValueError(f"{name}: seeds repeat: {list(out)}")
    return out


@dataclass(frozen=True)
class SeedPlan:
    """Tuning and reporting seeds of an experiment (disjoint).

    Attributes:
        tuning: seeds that hyperparameters and settings were chosen on.
        reporting: seeds every reported number comes from.
    """

    tuning: tuple[int, ...]
    reporting: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "tuning", _seed_tuple("tuning_seeds", self.tuning))
        object.__setattr__(self, "reporting", _seed_tuple("reporting_seeds", self.reporting))
        if not self.reporting:
            raise ValueError("reporting_seeds: at least one seed is needed")
        overlap = sorted(set(self.tuning) & set(self.reporting))
        if overlap:
            raise ValueError(f"reporting_seeds {overlap} are also tuning seeds: a number "
                             "measured on the seeds it was tuned on is not a result")

    def check_reporting(self, seeds: Sequence[int]) -> tuple[int, ...]:
        """``seeds`` if none is a tuning seed; else ``ValueError`` naming them."""
        seeds = _seed_tuple("seeds", seeds)
        bad = sorted(set(seeds) & set(self.tuning))
        if bad:
            raise ValueError(f"seeds {bad} are tuning seeds of this experiment; report on "
                             f"seeds disjoint from {list(self.tuning)}")
        return seeds

    @staticmethod
    def world(role: str, seed: int) -> int:
        """The world seed of run seed ``seed`` in ``role`` (:data:`SEED_KEYS`)."""
        return SEED_KEYS[role] + int(seed)

    def to_dict(self) -> dict[str, Any]:
        """``tuning_seeds``, ``reporting_seeds`` and the world seeds of each role."""
        return {"tuning_seeds": list(self.tuning), "reporting_seeds": list(self.reporting),
                "world_seeds": {role: [self.world(role, s) for s in self.reporting]
                                for role in SEED_KEYS}}


THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
"""Environment variables that pin BLAS/OpenMP to one thread (set to ``1`` in workers)."""
BACKENDS = ("local", "ray")
"""Where :func:`run_pool` runs jobs: processes of this machine, or Ray tasks."""


def init_worker() -> None:
    """Pin every worker to one thread (torch and BLAS): small networks never gain from more
    and spin-waiting threads slow everyone on a shared machine (NOTES.md, Threads)."""
    for var in THREAD_VARS:
        os.environ.setdefault(var, "1")
    import torch

    torch.set_num_threads(1)


def _init_worker_with(initializer: Callable[..., Any] | None, initargs: tuple) -> None:
    init_worker()
    if initializer is not None:
        initializer(*initargs)


def run_pool(fn: Callable[..., Any], jobs: Sequence[Any], *, workers: int = 1,
             progress: bool = True, desc: str = "runs",
             on_result: Callable[[Any], None] | None = None,
             initializer: Callable[..., Any] | None = None, initargs: tuple = (),
             backend: str = "local", address: str | None = None) -> list[Any]:
    """``[fn(job) for job in jobs]``, in ``workers`` processes (1: in this process), with a
    progress bar. Results come back in job order.

    With ``backend="ray"`` the jobs run as Ray tasks instead
    (:func:`agents.experiments.ray_backend.run_pool_ray`: at most ``workers`` at once, on the
    cluster at ``address`` or a local Ray instance); each job carries its seeds, so the
    results are the same.

    Args:
        fn: a module-level function (picklable).
        jobs: its arguments, one per call.
        workers: processes (>= 1).
        progress: show a tqdm bar.
        desc: the bar's label.
        on_result: called with each result as it arrives.
        initializer: a module-level function run once in every worker process (in this
            process when ``workers`` is 1) after the threads are pinned, with ``initargs``
            (e.g. data every job reads, handed over once instead of with each job).
        initargs: its arguments.
        backend: ``local`` or ``ray`` (:data:`BACKENDS`).
        address: the Ray cluster (``ray`` only; default: a local Ray instance).
    """
    from tqdm import tqdm

    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an int >= 1, got {workers!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "ray":
        from agents.experiments.ray_backend import run_pool_ray

        return run_pool_ray(fn, jobs, workers=workers, address=address, progress=progress,
                            desc=desc, on_result=on_result, initializer=initializer,
                            initargs=initargs)
    if address is not None:
        raise ValueError("address names a Ray cluster: it needs backend='ray'")
    out: list[Any] = [None] * len(jobs)
    bar = tqdm(total=len(jobs), desc=desc, disable=not progress, dynamic_ncols=True)
    try:
        if workers == 1:
            _init_worker_with(initializer, initargs)
            for i, job in enumerate(jobs):
                out[i] = fn(job)
                if on_result is not None:
                    on_result(out[i])
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker_with,
                                     initargs=(initializer, initargs)) as pool:
                futures = {pool.submit(fn, job): i for i, job in enumerate(jobs)}
                for fut in as_completed(futures):
                    out[futures[fut]] = fut.result()
                    if on_result is not None:
                        on_result(out[futures[fut]])
                    bar.update()
    finally:
        bar.close()
    return out
