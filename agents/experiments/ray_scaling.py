"""The Ray measurement: RLlib PPO env steps per second with 1 and 2 env runners, and the quick
suite's wall time on the local and the Ray backend, side by side in one run.

    python benchmarks/ray_scaling.py                    # -> a new results/ray-<time>/
    python benchmarks/ray_scaling.py --out results/ray  # the committed one

PPO: :func:`agents.experiments.ray_backend.train_ppo` on ``default`` with 2 providers (one
policy per role), ``--batch`` env steps per iteration, ``--iterations`` iterations per
setting; the first iteration (actor start-up, first compilation) is left out and the
median of the others is reported: env steps sampled per second of iteration (sampling plus
the learner's update, in this process). Suite: ``recsim-marl benchmark --suite quick`` with
``--seeds`` reporting seeds, ``--workers`` runs at once, on both backends (the Ray one
starts its own local instance with ``--workers`` CPUs, so both have the same parallelism);
the two runs' metrics are compared (they must be identical). The machine's load average is
recorded before and after: on a shared machine the figures move with it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from agents.experiments.common import new_results_dir

PPO_ENV = {"preset": "default", "n_providers": 2, "max_cycles": 200}
"""The world of the PPO measurement."""


def load_average() -> list[float]:
    """The 1-, 5- and 15-minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def measure_ppo(runners: int, *, iterations: int, batch: int) -> dict[str, Any]:
    """PPO env steps/s with ``runners`` env runners (median over iterations 2..n)."""
    from agents.experiments.ray_backend import train_ppo

    out = train_ppo(PPO_ENV, iterations=iterations, num_env_runners=runners,
                    train_batch_size_per_learner=batch, minibatch_size=128, num_epochs=1)
    its = out["iterations"]
    rates = [r["steps_per_s"] for r in its[1:]] or [its[0]["steps_per_s"]]
    return {"env_runners": runners, "iterations": its,
            "median_steps_per_s": statistics.median(rates),
            "env_steps_per_iteration": statistics.median(r["env_steps"] for r in its)}


def measure_suite(backend: str, *, seeds: int, workers: int, out_dir: Path,
                  tiny: bool = False) -> dict[str, Any]:
    """Wall time of the quick suite on ``backend``; its per-run metrics."""
    from agents.experiments import suite

    spec = suite.get_suite("quick", seeds=seeds, tiny=tiny)
    t0 = time.perf_counter()
    res = suite.run_suite(spec, out_dir=out_dir / f"suite_{backend}",
                          runs_dir=out_dir / f"runs_{backend}", workers=workers,
                          backend=backend, progress=False)
    wall = time.perf_counter() - t0
    doc = json.loads((out_dir / f"suite_{backend}" / "results.json").read_text())
    return {"backend": backend, "wall_s": wall, "runs_s": res["seconds"],
            "n_tasks": res["n_tasks"],
            "metrics": {f"{r['scenario']}/{r['policy']}/{r['seed']}": r["metrics"]
                        for r in doc["runs"]}}


def run(*, out: Path, iterations: int, batch: int, seeds: int, workers: int,
        tiny: bool = False) -> dict[str, Any]:
    """Every measurement; writes ``out/results.json`` and ``out/results.md``."""
    import shutil
    import tempfile

    import torch

    from agents.checkpoint import write_json
    from agents.experiments.ray_backend import init_ray

    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {"machine": {"cpus": os.cpu_count(),
                                       "python": platform.python_version(),
                                       "platform": platform.platform()},
                           "load_before": load_average(), "settings": dict(
                               iterations=iterations, batch=batch, seeds=seeds, workers=workers,
                               ppo_env=PPO_ENV, tiny=tiny)}
    scratch = Path(tempfile.mkdtemp(prefix="ray_scaling_"))
    try:
        t0 = time.perf_counter()
        init_ray(num_cpus=workers)
        doc["ray_init_s"] = time.perf_counter() - t0
        doc["ppo"] = [measure_ppo(r, iterations=iterations, batch=batch) for r in (1, 2)]
        doc["suite"] = [measure_suite(b, seeds=seeds, workers=workers, out_dir=scratch,
                                      tiny=tiny) for b in ("local", "ray")]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    local, ray = doc["suite"]
    doc["suite_identical"] = json.dumps(local["metrics"], sort_keys=True) == json.dumps(
        ray["metrics"], sort_keys=True)
    doc["load_after"] = load_average()
    for s in doc["suite"]:
        s.pop("metrics")
    write_json(out / "results.json", doc)
    (out / "results.md").write_text(report(doc))
    return doc


def report(doc: dict[str, Any]) -> str:
    """``results.md``."""
    st = doc["settings"]
    p1, p2 = doc["ppo"]
    local, ray = doc["suite"]
    lines = [
        "# Ray: RLlib PPO throughput and the suite on the Ray backend", "",
        f"One run on {doc['machine']['cpus']} CPUs ({doc['machine']['platform']}), "
        f"load average {doc['load_before']} before and {doc['load_after']} after (1, 5, 15 "
        "min): the machine is shared, and the figures move with its load. "
        f"`ray.init` took {doc['ray_init_s']:.1f} s.", "",
        "## RLlib PPO (new API stack), one policy per role", "",
        f"`default` with 4 recommenders and 2 providers, {st['ppo_env']['max_cycles']}-step "
        f"episodes, {st['batch']} env steps per iteration, 1 epoch, the learner in the driver; "
        f"median over iterations 2-{st['iterations']} (the first starts the actors).", "",
        "| env runners | env steps/s (sampling + update) | iterations |",
        "|---:|---:|---:|"]
    for p in doc["ppo"]:
        lines.append(f"| {p['env_runners']} | {p['median_steps_per_s']:.0f} | "
                     f"{len(p['iterations'])} |")
    ratio = p2["median_steps_per_s"] / p1["median_steps_per_s"]
    lines += ["", f"2 runners / 1 runner: {ratio:.2f}x.",
              "", "## The quick suite, local processes vs Ray tasks", "",
              f"`recsim-marl benchmark --suite quick --seeds {st['seeds']} --workers "
              f"{st['workers']}` ({local['n_tasks']} runs) with `--backend local` and "
              f"`--backend ray` (a local Ray instance with {st['workers']} CPUs, already "
              "started: its worker processes start inside the measurement), one after the "
              "other. Runs: every run plus the curves' reference policies and the drift "
              "picture (the suite's own `seconds`).", "",
              "| backend | runs (s) | with tables and plots (s) |", "|---|---:|---:|",
              f"| local | {local['runs_s']:.1f} | {local['wall_s']:.1f} |",
              f"| ray | {ray['runs_s']:.1f} | {ray['wall_s']:.1f} |", "",
              f"Ray / local (runs): {ray['runs_s'] / local['runs_s']:.2f}x. Per-run metrics "
              f"identical on both backends: {'yes' if doc['suite_identical'] else 'NO'}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python benchmarks/ray_scaling.py``."""
    from agents.cli import ArgumentParser, int_at_least

    p = ArgumentParser(prog="benchmarks/ray_scaling.py", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=None,
                   help="output folder (default: a new results/ray-<time>/)")
    p.add_argument("--iterations", type=int_at_least(2), default=4,
                   help="PPO iterations per setting (default 4)")
    p.add_argument("--batch", type=int_at_least(1), default=2000,
                   help="PPO env steps per iteration (default 2000)")
    p.add_argument("--seeds", type=int_at_least(1), default=1,
                   help="reporting seeds of the quick suite (default 1)")
    p.add_argument("--workers", type=int_at_least(1), default=2,
                   help="runs at once, and the Ray instance's CPUs (default 2)")
    p.add_argument("--tiny", action="store_true",
                   help="the suite's tiny sizes and budgets (a smoke run, not a measurement)")
    args = p.parse_args(argv)
    out = Path(args.out) if args.out else new_results_dir("ray")
    doc = run(out=out, iterations=args.iterations, batch=args.batch, seeds=args.seeds,
              workers=args.workers, tiny=args.tiny)
    print(report(doc))
    print(f"results: {out}/")
    return 0
