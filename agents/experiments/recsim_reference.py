"""Google's RecSim ``interest_evolution``, measured in its own virtual environment.

The throughput study (:mod:`agents.experiments.throughput`, ``--vs-recsim`` and ``--pairs``)
compares against the original RecSim in the same run. RecSim pins an old ``gym`` and must not
pollute the project's environment, so it lives in its own virtual environment (default
``.venv-recsim`` in the working directory, git-ignored) which :func:`ensure_recsim_venv` creates
on first use with ``pip install recsim-no-tf==0.2.3 six`` (RecSim imports ``six`` without
declaring it; the install resolves to gym 0.26.2 and gin-config 0.5; TensorFlow is not needed).

The measurement itself runs in a subprocess with that venv's interpreter (see
:data:`WORKER_SOURCE`): one ``interest_evolution`` environment (10 candidates, slate of 2,
documents resampled every step) is driven with uniformly random slates of distinct candidate
indices. One step is one slate shown to one user. The reported ``steps_per_second`` times only
the action sampling and ``env.step`` calls; ``steps_per_second_incl_reset`` also counts the
resets. From Python: ``run_recsim_reference(n_steps=50_000, seed=0)`` (or ``n_episodes=`` for
episode statistics).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
import venv
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_VENV",
    "RECSIM_REQUIREMENTS",
    "WORKER_SOURCE",
    "ensure_recsim_venv",
    "find_recsim_python",
    "run_recsim_reference",
]

log = logging.getLogger(__name__)

DEFAULT_VENV = Path(".venv-recsim")
"""Where the RecSim virtual environment lives unless told otherwise (relative to the working
directory, like :data:`agents.experiments.common.RESULTS_ROOT`)."""

RECSIM_REQUIREMENTS: tuple[str, ...] = ("recsim-no-tf==0.2.3", "six")
"""What gets pip-installed into the RecSim venv."""

#: Environment variables that keep the worker single-threaded.
_THREAD_ENV: dict[str, str] = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
}

#: Prefix of the worker's single result line on stdout.
_RESULT_MARKER = "RECSIM_REFERENCE_RESULT "

_IMPORT_CHECK = "import six, recsim.environments.interest_evolution"

# The worker runs inside the RecSim venv, so it may only use the standard
# library, numpy and recsim.  It receives one JSON argument with its settings
# and prints one line, ``_RESULT_MARKER + json``, on stdout.
WORKER_SOURCE = r'''
"""RecSim interest_evolution with uniformly random slates (runs in the RecSim venv)."""
import json
import sys
import time
import warnings

warnings.filterwarnings("ignore")

import numpy as np
from recsim.environments import interest_evolution


def _reset(env):
    """Resets ``env``; copes with both the old (obs) and new ((obs, info)) gym API."""
    out = env.reset()
    if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict):
        return out[0]
    return out


def _step(env, action):
    """Steps ``env``; returns (obs, reward, done) for 4- or 5-tuple gym APIs."""
    out = env.step(action)
    if len(out) == 5:
        obs, reward, terminated, truncated, _ = out
        return obs, reward, bool(terminated or truncated)
    obs, reward, done, _ = out
    return obs, reward, bool(done)


def main(cfg):
    seed = int(cfg["seed"])
    num_candidates = int(cfg["num_candidates"])
    slate_size = int(cfg["slate_size"])
    n_steps = cfg.get("n_steps")
    n_episodes = cfg.get("n_episodes")
    warmup_steps = int(cfg.get("warmup_steps", 0))

    env_config = {
        "num_candidates": num_candidates,
        "slate_size": slate_size,
        "resample_documents": True,
        "seed": seed,
    }
    env = interest_evolution.create_environment(env_config)
    # The choice model and the interest update draw from the global numpy
    # generator; RecSimGymEnv.seed seeds exactly that.
    env.seed(seed)
    rng = np.random.default_rng(seed)
    perm = rng.permutation

    # Untimed warm-up, so that first-call costs do not count.
    if warmup_steps:
        _reset(env)
        for _ in range(warmup_steps):
            if _step(env, perm(num_candidates)[:slate_size])[2]:
                _reset(env)

    clock = time.perf_counter
    step_time = 0.0
    steps = 0
    clicks = 0
    reward_total = 0.0
    ep_lengths = []
    ep_returns = []

    t_start = clock()
    _reset(env)
    ep_len = 0
    ep_ret = 0.0
    while True:
        if n_steps is not None and steps >= n_steps:
            break
        if n_episodes is not None and len(ep_lengths) >= n_episodes:
            break
        t0 = clock()
        action = perm(num_candidates)[:slate_size]
        obs, reward, done = _step(env, action)
        step_time += clock() - t0

        steps += 1
        ep_len += 1
        ep_ret += reward
        reward_total += reward
        for response in obs["response"]:
            clicks += int(response["click"])
        if done:
            ep_lengths.append(ep_len)
            ep_returns.append(ep_ret)
            ep_len = 0
            ep_ret = 0.0
            _reset(env)
    total_time = clock() - t_start

    try:
        from importlib.metadata import version
        recsim_version = version("recsim-no-tf")
    except Exception:  # pragma: no cover - metadata missing
        recsim_version = "unknown"
    try:
        import gym
        gym_version = gym.__version__
    except Exception:  # pragma: no cover
        gym_version = "unknown"

    n_done = len(ep_lengths)
    result = {
        "env": "interest_evolution",
        "env_config": env_config,
        "policy": "uniform random slate (distinct indices)",
        "steps": steps,
        "step_seconds": step_time,
        "total_seconds": total_time,
        "steps_per_second": steps / step_time if step_time > 0 else float("nan"),
        "steps_per_second_incl_reset": steps / total_time if total_time > 0 else float("nan"),
        "us_per_step": 1e6 * step_time / steps if steps else float("nan"),
        "episodes": n_done,
        "mean_episode_length": float(np.mean(ep_lengths)) if n_done else float("nan"),
        "mean_episode_return": float(np.mean(ep_returns)) if n_done else float("nan"),
        "std_episode_return": float(np.std(ep_returns)) if n_done else float("nan"),
        "clicks_per_step": clicks / steps if steps else float("nan"),
        "reward_per_step": reward_total / steps if steps else float("nan"),
        "seed": seed,
        "recsim_version": recsim_version,
        "gym_version": gym_version,
        "numpy_version": np.__version__,
        "python_version": sys.version.split()[0],
    }
    print("RECSIM_REFERENCE_RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
'''


def _venv_python(venv_dir: Path) -> Path:
    """The interpreter inside ``venv_dir`` (POSIX or Windows layout), as an absolute path
    (``absolute``, not ``resolve``: resolving follows the venv's symlink out of the venv)."""
    sub = ("Scripts", "python.exe") if os.name == "nt" else ("bin", "python")
    return Path(venv_dir, *sub).absolute()


def _import_check(python: Path) -> subprocess.CompletedProcess:
    """Run RecSim's imports in ``python``."""
    return subprocess.run([str(python), "-c", _IMPORT_CHECK], capture_output=True, text=True,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})


def find_recsim_python(path: Path | None = None) -> Path | None:
    """The interpreter of the RecSim venv at ``path`` (default :data:`DEFAULT_VENV`) if it
    imports RecSim, else ``None``; creates nothing."""
    python = _venv_python(DEFAULT_VENV if path is None else path)
    return python if python.exists() and _import_check(python).returncode == 0 else None


def _tail(text: str, n_lines: int = 30) -> str:
    """The last ``n_lines`` lines of ``text``."""
    return "\n".join(text.strip().splitlines()[-n_lines:])


def ensure_recsim_venv(path: Path | None = None) -> Path:
    """Creates (on first use) a virtual environment with RecSim installed.

    The venv is built with the standard library's ``venv`` module (equivalent
    to ``python -m venv``) and populated with
    ``pip install recsim-no-tf==0.2.3 six``.  Nothing is done when the venv
    already imports RecSim.

    Args:
        path: venv folder; defaults to :data:`DEFAULT_VENV`.

    Returns:
        Path of the venv's Python interpreter.

    Raises:
        RuntimeError: when the venv cannot be created or pip fails; the
            message carries the tail of pip's output.
    """
    venv_dir = Path(path) if path is not None else DEFAULT_VENV
    found = find_recsim_python(venv_dir)
    if found is not None:
        log.debug("RecSim venv ready at %s", venv_dir)
        return found
    python = _venv_python(venv_dir)

    if not python.exists():
        log.info("Creating RecSim virtual environment at %s", venv_dir)
        try:
            venv.EnvBuilder(with_pip=True, clear=False).create(venv_dir)
        except Exception as exc:
            raise RuntimeError(
                f"could not create a virtual environment at {venv_dir}: {exc}"
            ) from exc
        if not python.exists():
            raise RuntimeError(f"virtual environment at {venv_dir} has no interpreter at {python}")

    cmd = [str(python), "-m", "pip", "install", "--disable-pip-version-check", *RECSIM_REQUIREMENTS]
    log.info("Installing %s into %s", " ".join(RECSIM_REQUIREMENTS), venv_dir)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(
            f"pip install of {' '.join(RECSIM_REQUIREMENTS)} into {venv_dir} failed "
            f"(exit {proc.returncode}); output tail:\n{_tail(proc.stdout + proc.stderr)}"
        )
    check = _import_check(python)
    if check.returncode != 0:
        raise RuntimeError(
            f"RecSim installed into {venv_dir} but does not import; output tail:\n"
            f"{_tail(check.stdout + check.stderr)}\n"
            f"pip output tail:\n{_tail(proc.stdout + proc.stderr)}"
        )
    log.info("RecSim venv ready at %s", venv_dir)
    return python


def run_recsim_reference(
    n_steps: int = 50_000,
    seed: int = 0,
    python: Path | None = None,
    *,
    n_episodes: int | None = None,
    num_candidates: int = 10,
    slate_size: int = 2,
    warmup_steps: int = 1_000,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Measures RecSim ``interest_evolution`` with uniformly random slates.

    Runs :data:`WORKER_SOURCE` in a single-threaded subprocess of the RecSim
    venv's interpreter and returns its results.

    Args:
        n_steps: number of timed steps (one slate to one user each); ignored
            when ``n_episodes`` is given.
        seed: seeds the environment, the global numpy generator RecSim's
            choice model uses, and the slate sampler.
        python: interpreter with RecSim installed; by default
            :func:`ensure_recsim_venv` provides (and if needed creates) one.
        n_episodes: run this many complete episodes instead of ``n_steps``.
        num_candidates: candidate documents per step.
        slate_size: documents per slate (distinct candidates).
        warmup_steps: untimed steps run before the measurement.
        timeout: seconds before the subprocess is killed (``None``: no limit).

    Returns:
        A dict with, among others, ``steps_per_second`` (action sampling plus
        ``env.step`` only), ``steps_per_second_incl_reset``, ``us_per_step``,
        ``steps``, ``episodes`` (completed ones), ``mean_episode_length``,
        ``mean_episode_return`` (sum of clicked watch time), ``clicks_per_step``,
        ``recsim_version`` and ``gym_version``.

    Raises:
        RuntimeError: when the worker fails or prints no result.
    """
    # absolute: the worker runs in a temporary directory
    python = ensure_recsim_venv() if python is None else Path(python).absolute()
    cfg: dict[str, Any] = {
        "seed": int(seed),
        "num_candidates": int(num_candidates),
        "slate_size": int(slate_size),
        "n_steps": None if n_episodes is not None else int(n_steps),
        "n_episodes": None if n_episodes is None else int(n_episodes),
        "warmup_steps": int(warmup_steps),
    }
    env = {**os.environ, **_THREAD_ENV, "PYTHONWARNINGS": "ignore", "PYTHONHASHSEED": "0"}
    env.pop("PYTHONPATH", None)  # keep the project's packages out of the RecSim venv

    with tempfile.TemporaryDirectory(prefix="recsim_ref_") as tmp:
        script = Path(tmp) / "recsim_worker.py"
        script.write_text(WORKER_SOURCE)
        log.info("Running RecSim interest_evolution reference (%s) with %s", cfg, python)
        proc = subprocess.run(
            [str(python), str(script), json.dumps(cfg)],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp,
            timeout=timeout,
        )
    output_tail = _tail(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(
            f"RecSim worker failed (exit {proc.returncode}); output tail:\n{output_tail}"
        )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_RESULT_MARKER):
            return json.loads(line[len(_RESULT_MARKER) :])
    raise RuntimeError(f"RecSim worker printed no result; output tail:\n{output_tail}")
