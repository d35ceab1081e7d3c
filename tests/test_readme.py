"""Every fenced block of README.md runs as written, with smaller budgets.

Python blocks run in order in one namespace, as a reader pasting them into one session
would. Bash blocks run line by line: each command is either in :data:`COMMANDS` (the command
the test runs, the same program and subcommand with smaller budgets) or in :data:`SKIPPED`
with the reason. The only edits to Python blocks are the budget substitutions of
:data:`SHRINK`. A README command or budget this file does not know fails the test, so the
README cannot drift from the code. Commands run from a scratch folder that links the
repository's ``configs/``, ``scripts/`` and ``benchmarks/``, so nothing is written into the
checkout.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
BIN = Path(sys.executable).parent

SHRINK = {  # README text -> what the test runs instead (budgets and sizes only)
    "max_cycles=500": "max_cycles=20",
    "learn(16 * 256 * 8)": "learn(16 * 256)",
    "RecommenderVecEnv(256, preset=\"recsim_ie\")": "RecommenderVecEnv(64, preset=\"recsim_ie\")",
    "n_steps=16, batch_size=1024": "n_steps=4, batch_size=256",
    "total_steps=20_000, n_sessions=64, eval_every=5_000, eval_steps=100":
        "total_steps=128, n_sessions=16, eval_every=64, eval_steps=5",
    'make_learner("dqn", cfg, seed=0)': 'make_learner("dqn", cfg, seed=0, buffer_size=1_000)',
    "n_users=800": "n_users=800, n_items_initial=60, n_items_max=200",
    "make_learner(\"dqn\", cfg, seed=i)": "make_learner(\"dqn\", cfg, seed=i, buffer_size=1_000)",
    "RunConfig(total_steps=8_000,": "RunConfig(total_steps=64, eval_steps=5,",
}

_TINY_TRAIN = ("--set run.n_sessions=8 --set run.eval_every=128 --set run.eval_steps=5 "
               "--set learner.kwargs.learning_starts=32 --set learner.kwargs.buffer_size=500 "
               "--set learner.kwargs.batch_size=16 --set env.n_items_initial=60 "
               "--set env.n_items_max=200")
_TINY_BENCH = "--tiny --scenarios default --policies random dqn --seeds 2 --workers 1 --quiet"
COMMANDS = {  # README command (comment removed) -> the command the test runs
    ".venv/bin/recsim-marl presets": "recsim-marl presets",
    "python scripts/train.py --preset recsim_ie --learner slateq --steps 300000 --n-sessions 256":
        "python scripts/train.py --preset recsim_ie --learner slateq --steps 128 "
        "--n-sessions 16 --eval-steps 5 --quiet --learner-kwargs '{\"buffer_size\": 500}'",
    "python scripts/train.py --preset default --learner dqn --provider-learner ppo "
    "--set n_providers=2":
        "python scripts/train.py --preset default --learner dqn --provider-learner ppo "
        "--set n_providers=2 --steps 64 --eval-steps 5 --quiet "
        "--learner-kwargs '{\"buffer_size\": 500}'",
    "recsim-marl benchmark --suite full --workers 2":
        f"recsim-marl benchmark --suite full {_TINY_BENCH}",
    "recsim-marl benchmark --suite quick --workers 2":
        f"recsim-marl benchmark --suite quick {_TINY_BENCH}",
    "recsim-marl benchmark --suite full --replot":  # replots the run made just above
        "recsim-marl benchmark --suite full --tiny --quiet --replot {last_results}",
    "recsim-marl tensorboard --logdir runs/benchmark_full":
        "recsim-marl tensorboard --logdir runs/benchmark_full --detach --json",
    "recsim-marl tensorboard --logdir runs": "recsim-marl tensorboard --logdir runs --detach --json",
    "recsim-marl presets": "recsim-marl presets",
    "recsim-marl demo":
        "recsim-marl demo --steps 128 --sessions 8 --eval-seeds 2 --eval-steps 10 --quiet",
    "recsim-marl train configs/dqn_default.toml --set run.total_steps=50000 "
    "--set learner.kwargs.lr=3e-4":
        "recsim-marl train configs/dqn_default.toml --set run.total_steps=256 "
        f"--set learner.kwargs.lr=3e-4 {_TINY_TRAIN} --quiet",
    "recsim-marl study consensus --spec configs/studies/consensus_scarcity.toml --tiny "
    "--seeds 2 --regimes centre":
        "recsim-marl study consensus --spec configs/studies/consensus_scarcity.toml --tiny "
        "--seeds 2 --regimes centre --methods ring --quiet",
    "recsim-marl study consensus --spec configs/studies/consensus_scarcity.toml --workers 2 "
    "--out results/consensus_scarcity":
        "recsim-marl study consensus --spec configs/studies/consensus_scarcity.toml --tiny "
        "--seeds 2 --regimes slots1 --methods fedavg --quiet --out results/consensus_scarcity",
    "recsim-marl evaluate runs/<run> --scenario long_term --seeds 5":
        "recsim-marl evaluate {last_run} --scenario long_term --seeds 2 --steps 10 "
        "--sessions 8 --quiet",
}
SKIPPED = {
    "make demo": "runs `recsim-marl demo`, run below with a small budget",
    "make test": "this test is part of it",
    "make test-all": "this test is part of it",
    "source .venv/bin/activate": "the test runs with the virtual environment's bin/ on PATH",
    "tensorboard --logdir runs": "a server that never returns; `recsim-marl tensorboard "
                                 "--detach` is run instead",
}


def fenced_blocks(text: str) -> list[tuple[str, str, int]]:
    """``(language, code, first line number)`` of every fenced block."""
    return [(m.group(1), m.group(2), text[:m.start()].count("\n") + 2)
            for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M)]


def bash_commands(code: str) -> list[str]:
    """Commands of a bash block, comments removed."""
    out = []
    for line in code.splitlines():
        line = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        if line:
            out.append(" ".join(line.split()))
    return out


def test_readme_knows_every_block_and_budget():
    text = README.read_text()
    for old in SHRINK:
        assert old in text, f"SHRINK entry no longer in README.md: {old!r}"
    known = set(COMMANDS) | set(SKIPPED)
    for lang, code, line in fenced_blocks(text):
        assert lang in ("python", "bash"), f"README.md:{line}: block of unknown language {lang!r}"
        if lang == "bash":
            for cmd in bash_commands(code):
                assert cmd in known, f"README.md:{line}: command the test does not know: {cmd!r}"
    for readme_cmd, run in COMMANDS.items():  # the same program and subcommand
        assert shlex.split(run)[:2] == shlex.split(readme_cmd.replace(".venv/bin/", ""))[:2]


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    for name in ("configs", "scripts", "benchmarks"):
        (tmp_path / name).symlink_to(REPO / name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_readme_python_blocks_run(scratch, capsys):
    text = README.read_text()
    for old, new in SHRINK.items():
        text = text.replace(old, new)
    namespace: dict = {"__name__": "__readme__"}
    for lang, code, line in fenced_blocks(text):
        if lang == "python":
            exec(compile(code, f"README.md:{line}", "exec"), namespace)  # noqa: S102
    run_dirs = [p.name for p in (scratch / "runs").iterdir()]
    assert run_dirs and all(not d.startswith("custom__") for d in run_dirs), run_dirs


def test_readme_bash_commands_run(scratch):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(REPO)}
    context = {"last_results": "", "last_run": ""}
    for lang, code, line in fenced_blocks(README.read_text()):
        if lang != "bash":
            continue
        for cmd in bash_commands(code):
            if cmd in SKIPPED:
                continue
            run = COMMANDS[cmd]
            for key, value in context.items():
                run = run.replace("{" + key + "}", value)
            proc = subprocess.run(run, shell=True, cwd=scratch, env=env, capture_output=True,
                                  text=True, timeout=300)
            assert proc.returncode == 0, f"README.md:{line}: {run}\n{proc.stderr[-2000:]}"
            if "--detach --json" in run:  # a TensorBoard server: stop it
                os.kill(json.loads(proc.stdout)["pid"], signal.SIGTERM)
            for out_line in proc.stdout.splitlines():
                if out_line.startswith("results: "):
                    context["last_results"] = out_line.split()[1].rstrip("/")
                if out_line.startswith("run directory: "):
                    context["last_run"] = out_line.removeprefix("run directory: ")
