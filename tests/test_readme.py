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
    "learn(16 * 64 * 32)": "learn(16 * 64)",
    "n_steps=16, batch_size=256, n_epochs=10": "n_steps=4, batch_size=64, n_epochs=1",
    "total_steps=20_000, n_sessions=64, eval_every=5_000, eval_steps=100":
        "total_steps=128, n_sessions=16, eval_every=64, eval_steps=5",
    'make_learner("dqn", cfg, seed=0)': 'make_learner("dqn", cfg, seed=0, buffer_size=1_000)',
    "n_users=800": "n_users=800, n_items_initial=60, n_items_max=200",
    "make_learner(\"dqn\", cfg, seed=i)": "make_learner(\"dqn\", cfg, seed=i, buffer_size=1_000)",
    "RunConfig(total_steps=8_000,": "RunConfig(total_steps=64, eval_steps=5,",
    '"n_providers": 2, "max_cycles": 200}':
        '"n_providers": 2, "max_cycles": 20, "n_users": 100, "n_items_initial": 60, '
        '"n_items_max": 200}',
    "num_env_runners=2,": "num_env_runners=1,",
    "train_batch_size_per_learner=4000, minibatch_size=128, num_epochs=5":
        "train_batch_size_per_learner=40, minibatch_size=20, num_epochs=1",
    "for _ in range(10):\n    result = algo.train()":
        "for _ in range(1):\n    result = algo.train()",
}
RAY_BLOCK = "recsim_env.rllib"
"""Python blocks that import this need the extra ``ray``: :func:`test_readme_ray_runs` runs
them (and :data:`RAY_COMMANDS`) on the test session's Ray instance."""

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
_TINY_RAY_BENCH = "--tiny --scenarios default --policies random dqn --seeds 1 --quiet"
RAY_COMMANDS = {  # README command -> the command the test runs, on the session's Ray instance
    "python scripts/rllib_ppo.py --iterations 20 --env-runners 2":
        "python scripts/rllib_ppo.py --iterations 1 --env-runners 0 --tiny --quiet",
    "recsim-marl sweep --suite quick --scenario default --policy dqn --grid lr=1e-3,3e-4 "
    "--scheduler asha":
        "recsim-marl sweep --suite quick --scenario default --policy dqn --grid lr=1e-3,3e-4 "
        "--scheduler asha --tiny --seeds 1 --quiet",
    "recsim-marl benchmark --suite quick --backend ray":
        f"recsim-marl benchmark --suite quick --backend ray {_TINY_RAY_BENCH}",
}
_NO_CLUSTER = ("starts or stops a long-lived Ray cluster (`ray stop` ends every Ray process "
               "on the machine by name); the Ray commands run on the test session's instance")
SKIPPED = {
    "make demo": "runs `recsim-marl demo`, run below with a small budget",
    "make test": "this test is part of it",
    "make test-all": "this test is part of it",
    "source .venv/bin/activate": "the test runs with the virtual environment's bin/ on PATH",
    "tensorboard --logdir runs": "a server that never returns; `recsim-marl tensorboard "
                                 "--detach` is run instead",
    "export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 RAY_AUTH_MODE=token": _NO_CLUSTER,
    "ray start --head --port 6379 --num-cpus 2 --include-dashboard false "
    "--disable-usage-stats": _NO_CLUSTER,
    "ray status": "needs the cluster of `ray start`",
    "ray stop": _NO_CLUSTER,
    "ray start --head --node-ip-address HEAD_IP --port 6379 --include-dashboard false "
    "--disable-usage-stats": _NO_CLUSTER,
    "RAY_AUTH_MODE=token RAY_AUTH_TOKEN=TOKEN ray start --address HEAD_IP:6379": _NO_CLUSTER,
    "recsim-marl benchmark --suite quick --backend ray --address auto":
        "needs the cluster of `ray start` (the Ray commands run on the test session's "
        "instance, where Ray is already connected)",
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
    known = set(COMMANDS) | set(SKIPPED) | set(RAY_COMMANDS)
    for lang, code, line in fenced_blocks(text):
        assert lang in ("python", "bash"), f"README.md:{line}: block of unknown language {lang!r}"
        if lang == "bash":
            for cmd in bash_commands(code):
                assert cmd in known, f"README.md:{line}: command the test does not know: {cmd!r}"
    for readme_cmd, run in {**COMMANDS, **RAY_COMMANDS}.items():  # same program, subcommand
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
        if lang == "python" and RAY_BLOCK not in code:
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
            if cmd in SKIPPED or cmd in RAY_COMMANDS:  # RAY_COMMANDS: test_readme_ray_runs
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


def run_in_process(run: str) -> tuple[int, str]:
    """``recsim-marl ...`` or ``python scripts/<script>.py ...`` in this process: ``(exit
    status, stdout)``."""
    import contextlib
    import io
    import runpy

    argv = shlex.split(run)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        if argv[0] == "recsim-marl":
            from agents.cli import main

            rc = main(argv[1:])
        else:
            assert argv[0] == "python" and argv[1].startswith("scripts/"), run
            main = runpy.run_path(str(REPO / argv[1]))["main"]
            rc = main(argv[2:])
    return int(rc or 0), out.getvalue()


@pytest.mark.ray
def test_readme_ray_runs(scratch, ray_session):
    """The "Scaling out" section on the session's Ray instance, in this process: its Python
    block, then its commands (each command in a subprocess would be a new Ray job with new
    worker processes: about 30 s each on a busy 2-core machine)."""
    text = README.read_text()
    for old, new in SHRINK.items():
        text = text.replace(old, new)
    blocks = [(code, line) for lang, code, line in fenced_blocks(text)
              if lang == "python" and RAY_BLOCK in code]
    assert blocks
    for code, line in blocks:
        exec(compile(code, f"README.md:{line}", "exec"), {"__name__": "__readme__"})  # noqa: S102
    assert (scratch / "runs" / "rllib_ppo").is_dir()
    ran = []
    for lang, code, line in fenced_blocks(README.read_text()):
        for cmd in bash_commands(code) if lang == "bash" else []:
            if cmd in RAY_COMMANDS:
                run = RAY_COMMANDS[cmd]
                rc, stdout = run_in_process(run)
                assert rc == 0, f"README.md:{line}: {run}\n{stdout[-2000:]}"
                ran.append(cmd)
    assert ran == list(RAY_COMMANDS)
    assert len(list((scratch / "results").glob("quick-*/results.md"))) == 1
    (sweep,) = (scratch / "results").glob("sweep_quick_default_dqn-*/results.json")
    runs = json.loads(sweep.read_text())["runs"]  # ASHA may stop one; the best runs to its end
    assert len(runs) == 2 and any(r["error"] is None and not r["stopped_early"] for r in runs)
