"""The main job on the built-in default scenario: a seeded run, then a table of its metrics.

    python scripts/demo.py [--steps 2000] [--seed 0] [--preset default]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

import recsim_env  # noqa: E402


def run_builtin(preset: str, steps: int, seed: int) -> dict[str, float]:
    """Run the parallel env with uniformly random slates and no provider agents."""
    env = recsim_env.parallel_env(preset=preset, max_cycles=steps)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    cfg = env.config
    for _ in tqdm(range(steps), desc=f"{preset} (random slates)", unit="step", leave=False):
        slates = np.argsort(rng.random((cfg.n_recommenders, cfg.n_candidates)), axis=1)
        actions = {a: (int(s[0]) if cfg.slate_size == 1 else s[: cfg.slate_size])
                   for a, s in zip(env.recommenders, slates)}
        actions.update({a: 0 for a in env.providers})
        env.step(actions)
    return env.metrics()


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    torch.set_num_threads(1)
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--preset", default="default", choices=recsim_env.PRESETS)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    m = run_builtin(args.preset, args.steps, args.seed)
    print(f"\n{args.preset}: {args.steps} steps, seed {args.seed}, random recommenders\n")
    print(f"| {'metric':28s} | {'value':>10s} |")
    print(f"|{'-' * 30}|{'-' * 12}|")
    for k, v in m.items():
        print(f"| {k:28s} | {v:10.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
