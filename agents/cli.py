"""The ``recsim-marl`` command line.

Subcommands::

    recsim-marl presets                       # scenarios with a one-line description
    recsim-marl demo                          # what `make demo` runs
    recsim-marl train configs/dqn_default.toml --set run.total_steps=50000
    recsim-marl evaluate runs/<run>/checkpoint.pt --scenario long_term
    recsim-marl benchmark --suite quick --workers 2
    recsim-marl benchmark --suite quick --backend ray   # the same runs as Ray tasks
    recsim-marl sweep --suite quick --scenario default --policy dqn --grid lr=1e-3,3e-4
    recsim-marl tensorboard --logdir runs     # TensorBoard on 127.0.0.1

Every subcommand takes ``--quiet`` (no progress bar) and ``--json`` (one JSON document on
stdout, for scripts). Training configs are TOML files (see ``configs/``) with the tables
``[env]``, ``[learner]``, ``[run]`` and an optional ``[consensus]``; every key is validated and
an error names it (``run.total_steps: must be an int >= 0, got 'abc'``). ``--set key=value``
overrides a key by its dotted path (``--set env.n_users=500 --set learner.kwargs.lr=3e-4``).
"""

from __future__ import annotations

import os

# One BLAS / OpenMP thread: small matrices never gain from more, and with other processes on
# the cores extra threads spin-wait (NOTES.md, Threads). Set before numpy is imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import copy  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import tomllib  # noqa: E402

from agents.experiments.common import EVAL, SeedPlan  # noqa: E402
from agents.stats import fmt_ci  # noqa: E402

DEMO_STEPS = 100_000
"""The demo's DQN training budget (env steps)."""
TRAIN_CONFIG_NAME = "train_config.json"
"""The resolved training config, written into every run directory by ``train``."""


class ConfigError(ValueError):
    """A bad config value or override; the message starts with the dotted key."""


class ArgumentParser(argparse.ArgumentParser):
    """An ``argparse`` parser whose errors are one line (exit status 2): the option, the value
    and what is allowed, then where to read more; no usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        """Print ``<prog>: error: <message>`` and exit with status 2."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def int_at_least(low: int) -> Any:
    """An argparse ``type``: an int >= ``low``; the error names the value and the bound."""

    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an int >= {low}, got {raw!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an int >= {low}, got {value}")
        return value

    parse.__name__ = f"int >= {low}"
    return parse


# --------------------------------------------------------------------------- config schema
def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "true or false"
    if _is_int(v):
        return "an int"
    if _is_number(v):
        return "a number"
    if isinstance(v, (list, tuple)):
        return "a list"
    return "a string" if isinstance(v, str) else type(v).__name__


def _same_kind(default: Any, value: Any) -> bool:
    """``value`` may replace ``default`` (an int for a float is fine, text for a number not)."""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) == isinstance(value, bool)
    if _is_int(default):
        return _is_int(value)
    if _is_number(default):
        return _is_number(value)
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    if isinstance(default, str):
        return isinstance(value, str)
    return True


# [run] keys: name -> (check, expectation). The CLI sets algo, scenario and progress itself.
_RUN_KEYS: dict[str, tuple[Any, str]] = {
    "total_steps": (lambda v: _is_int(v) and v >= 0, "an int >= 0"),
    "n_sessions": (lambda v: _is_int(v) and v >= 1, "an int >= 1"),
    "seed": (lambda v: _is_int(v) and v >= 0, "an int >= 0"),
    "eval_seeds": (lambda v: isinstance(v, list) and len(v) >= 1
                   and all(_is_int(x) and x >= 0 for x in v), "a non-empty list of ints >= 0"),
    "eval_every": (lambda v: _is_int(v) and v >= 0, "an int >= 0"),
    "eval_steps": (lambda v: _is_int(v) and v >= 1, "an int >= 1"),
    "max_session_steps": (lambda v: _is_int(v) and v >= 1, "an int >= 1"),
    "provider_episode_steps": (lambda v: _is_int(v) and v >= 1, "an int >= 1"),
    "log_every": (lambda v: _is_int(v) and v >= 1, "an int >= 1"),
    "checkpoint_every": (lambda v: _is_int(v) and v >= 0, "an int >= 0"),
    "save_checkpoints": (lambda v: isinstance(v, bool), "true or false"),
    "light_checkpoints": (lambda v: isinstance(v, bool), "true or false"),
    "eval_at_start": (lambda v: isinstance(v, bool), "true or false"),
    "run_root": (lambda v: isinstance(v, str) and v != "", "a non-empty string"),
}
_CONSENSUS_KEYS: dict[str, tuple[Any, str]] = {
    "n_learners": (lambda v: _is_int(v) and v >= 2, "an int >= 2"),
    "alpha": (lambda v: _is_number(v) and math.isfinite(v) and v >= 0, "a number >= 0"),
    "topology": (lambda v: v in ("complete", "ring", "star"),
                 "one of 'complete', 'ring', 'star'"),
    "every": (lambda v: _is_int(v) and v >= 1, "an int >= 1"),
    "common_init": (lambda v: isinstance(v, bool), "true or false"),
}
_SECTIONS = ("env", "learner", "run", "consensus")

DEFAULT_CONFIG: dict[str, Any] = {
    "env": {"preset": "default"},
    "learner": {"name": "dqn", "kwargs": {}},
    "run": {"total_steps": 100_000, "n_sessions": 64, "seed": 0, "eval_every": 10_000,
            "eval_steps": 200, "eval_seeds": [10_001, 10_002], "run_root": "runs"},
}


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file (``ConfigError`` naming the file on a syntax error)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None


def parse_value(raw: str) -> Any:
    """A ``--set`` value: a TOML value (``3``, ``1e-3``, ``true``, ``[1, 2]``, ``"x"``), or the
    raw text when it is not one (so ``--set env.preset=cold_start`` needs no quotes)."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def apply_overrides(config: dict[str, Any], items: list[str]) -> dict[str, Any]:
    """Apply ``--set section.key=value`` overrides to a copy of ``config``.

    Raises:
        ConfigError: naming the item or key (no ``=``, unknown section or key).
    """
    out = copy.deepcopy(config)
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE (e.g. run.total_steps=1000), got {item!r}")
        parts = key.split(".")
        if parts[0] not in _SECTIONS or len(parts) < 2 or any(p == "" for p in parts):
            raise ConfigError(f"{key}: unknown key; use <section>.<key> with section one of "
                              f"{', '.join(_SECTIONS)} (e.g. env.n_users=500)")
        if parts[0] == "learner" and parts[1] == "kwargs" and len(parts) == 2:
            raise ConfigError(f"{key}: set one option at a time (learner.kwargs.lr=1e-3)")
        node = out
        for p in parts[:-1]:
            child = node.setdefault(p, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{key}: {p!r} is not a table")
            node = child
        node[parts[-1]] = parse_value(raw.strip())
    return out


def _check_keys(section: str, table: Any, known: Any) -> None:
    if not isinstance(table, dict):
        raise ConfigError(f"{section}: must be a table, got {table!r}")
    for key in table:
        if key not in known:
            raise ConfigError(f"{section}.{key}: unknown key; known keys: "
                              f"{', '.join(sorted(known))}")


def validate_config(raw: dict[str, Any]) -> dict[str, Any]:
    """Check a training config and fill defaults; every error names the dotted key.

    Returns:
        ``{"env": {...}, "learner": {"name", "kwargs"}, "run": {...}, "consensus": {...}?}``
        with the env config already built (``"env_config"``, an :class:`EnvConfig`).
    """
    from agents.factory import learner_names
    from recsim_env.config import PRESETS, EnvConfig, make_config

    for key in raw:
        if key not in _SECTIONS:
            raise ConfigError(f"{key}: unknown section; known sections: {', '.join(_SECTIONS)}")
    cfg = {s: copy.deepcopy(raw.get(s, DEFAULT_CONFIG.get(s, {}))) for s in _SECTIONS}
    # env
    env = cfg["env"]
    fields = {f.name: f for f in dataclasses.fields(EnvConfig) if f.name != "extra"}
    _check_keys("env", env, set(fields) | {"preset"})
    preset = env.get("preset", "default")
    if preset not in PRESETS:
        raise ConfigError(f"env.preset: must be one of {', '.join(PRESETS)}, got {preset!r}")
    overrides = {k: (tuple(v) if isinstance(v, list) else v) for k, v in env.items()
                 if k != "preset"}
    try:
        env_config = make_config(preset, **overrides)
    except (ValueError, TypeError) as e:
        msg = str(e)
        name = next((k for k in sorted(fields, key=len, reverse=True) if msg.startswith(k)), None)
        raise ConfigError(f"env.{name}: {msg}" if name else f"env: {msg}") from None
    # learner
    learner = cfg["learner"]
    _check_keys("learner", learner, {"name", "kwargs"})
    name = learner.setdefault("name", "dqn")
    if name not in learner_names():
        raise ConfigError(f"learner.name: must be one of {', '.join(learner_names())}, "
                          f"got {name!r}")
    kwargs = learner.setdefault("kwargs", {})
    if not isinstance(kwargs, dict):
        raise ConfigError(f"learner.kwargs: must be a table, got {kwargs!r}")
    # the learner's hyperparameters for this scenario (configs/learners/<name>.toml), then
    # the config's own keys on top
    from agents.hparams import learner_hparams

    try:
        table = learner_hparams(name, preset)
    except ValueError:  # baselines without a table take their defaults
        table = {}
    for key, value in kwargs.items():  # the table's type is the expectation
        if key in table and not _same_kind(table[key], value):
            raise ConfigError(f"learner.kwargs.{key}: must be {_kind(table[key])} (like "
                              f"{table[key]!r}), got {value!r}")
    learner["kwargs"] = {**table, **{k: (tuple(v) if isinstance(v, list) else v)
                                     for k, v in kwargs.items()}}
    # run
    run = {**DEFAULT_CONFIG["run"], **cfg["run"]}
    _check_keys("run", cfg["run"], _RUN_KEYS)
    for key, value in run.items():
        check, expected = _RUN_KEYS[key]
        if not check(value):
            raise ConfigError(f"run.{key}: must be {expected}, got {value!r}")
    if run["seed"] in run["eval_seeds"]:
        raise ConfigError(f"run.eval_seeds: must be disjoint from run.seed ({run['seed']}), "
                          f"got {run['eval_seeds']!r}")
    out = {"env": env | {"preset": preset}, "learner": learner, "run": run,
           "env_config": env_config}
    # consensus
    if raw.get("consensus") is not None:
        cons = {"n_learners": 4, "alpha": 0.1, "topology": "ring", "every": 1,
                "common_init": False, **cfg["consensus"]}
        _check_keys("consensus", cfg["consensus"], _CONSENSUS_KEYS)
        for key, value in cons.items():
            check, expected = _CONSENSUS_KEYS[key]
            if not check(value):
                raise ConfigError(f"consensus.{key}: must be {expected}, got {value!r}")
        if run["n_sessions"] % cons["n_learners"]:
            raise ConfigError(f"consensus.n_learners: must divide run.n_sessions "
                              f"({run['n_sessions']}), got {cons['n_learners']}")
        out["consensus"] = cons
    return out


# --------------------------------------------------------------------------- building learners
def build_learner(name: str, env_config: Any, *, n_rows: int, seed: int, total_steps: int,
                  kwargs: dict[str, Any] | None = None) -> Any:
    """:func:`agents.factory.build_learner`, its errors as ``ConfigError`` (exit status 2)."""
    from agents.factory import build_learner as build

    try:
        return build(name, env_config, n_rows=n_rows, seed=seed, total_steps=total_steps,
                     kwargs=kwargs)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def build_recommenders(cfg: dict[str, Any]) -> tuple[Any, dict[str, Any], Any, list[Any]]:
    """The runner's pieces for a validated config.

    Returns:
        ``(world_config, learners_by_agent, callbacks, learner_list)``: one shared learner for
        the role (``{"recommender": learner}``), or with ``[consensus]`` ``n_learners``
        independent learners over the session slots (slot ``i`` -> learner ``i % n``) coupled
        by a :class:`agents.consensus.ConsensusWrapper` (the one callback).
    """
    from agents.factory import session_config

    env_config, learner, run = cfg["env_config"], cfg["learner"], cfg["run"]
    n = run["n_sessions"]
    cons = cfg.get("consensus")
    if cons is None:
        one = build_learner(learner["name"], env_config, n_rows=n, seed=run["seed"],
                            total_steps=run["total_steps"], kwargs=learner["kwargs"])
        return env_config, {"recommender": one}, [], [one]
    from agents.consensus import ConsensusWrapper

    m = cons["n_learners"]
    group = [build_learner(learner["name"], env_config, n_rows=n // m, seed=run["seed"] * m + j,
                           total_steps=run["total_steps"], kwargs=learner["kwargs"])
             for j in range(m)]
    try:
        wrapper = ConsensusWrapper(group, alpha=float(cons["alpha"]), topology=cons["topology"],
                                   every=cons["every"], common_init=cons["common_init"])
    except ValueError as e:
        raise ConfigError(f"consensus: {e}") from None
    mapping = {f"recommender_{i}": group[i % m] for i in range(n)}
    return session_config(env_config, n), mapping, [wrapper], group


# --------------------------------------------------------------------------- output helpers
def _emit(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    from agents.checkpoint import to_json

    if args.json:
        print(json.dumps(to_json(payload)))
    elif text:
        print(text)


# --------------------------------------------------------------------------- presets
def cmd_presets(args: argparse.Namespace) -> int:
    """List the scenarios with a one-line description."""
    from recsim_env.config import PRESET_DESCRIPTIONS, PRESETS

    rows = {p: PRESET_DESCRIPTIONS.get(p, "") for p in PRESETS}
    width = max(len(p) for p in rows)
    _emit(args, {"presets": rows}, "\n".join(f"{p:<{width}}  {d}" for p, d in rows.items()))
    return 0


# --------------------------------------------------------------------------- train
def cmd_train(args: argparse.Namespace) -> int:
    """Train from a TOML config (plus overrides); prints the run directory."""
    import torch

    from agents.runner import RunConfig, Runner

    torch.set_num_threads(1)
    raw = load_toml(args.config) if args.config is not None else copy.deepcopy(DEFAULT_CONFIG)
    raw = apply_overrides(raw, args.set)
    cfg = validate_config(raw)
    world_config, learners, callbacks, _ = build_recommenders(cfg)
    run_kw = dict(cfg["run"])
    run_kw["eval_seeds"] = tuple(run_kw["eval_seeds"])
    consensus = cfg.get("consensus") is not None
    if consensus:
        run_kw.pop("n_sessions")  # one agent per slot: n_recommenders == n_sessions
    algo = cfg["learner"]["name"] + ("_consensus" if consensus else "")
    light = bool(args.light_checkpoints or run_kw.pop("light_checkpoints", False))
    try:
        run = RunConfig(**run_kw, algo=algo, scenario=cfg["env"]["preset"],
                        progress=not (args.quiet or args.json), light_checkpoints=light)
    except ValueError as e:
        msg = str(e)
        key = next((k for k in _RUN_KEYS if msg.startswith(k)), None)
        raise ConfigError(f"run.{key}: {msg}" if key else f"run: {msg}") from None
    # --resume continues in the checkpoint's own run directory (progress.csv keeps its rows)
    run_dir = None
    if args.resume is not None:
        ckpt = args.resume / "checkpoint.pt" if args.resume.is_dir() else args.resume
        if not ckpt.is_file():
            raise ConfigError(f"--resume: no checkpoint at {str(ckpt)!r}")
        run_dir = ckpt.parent
    runner = Runner(world_config, learners, run, run_dir=run_dir, callbacks=callbacks)
    saved = {k: v for k, v in cfg.items() if k != "env_config"}
    from agents.checkpoint import to_json

    (runner.run_dir / TRAIN_CONFIG_NAME).write_text(
        json.dumps(to_json(saved), indent=2, sort_keys=True))
    if args.resume is not None:
        runner.load(ckpt)
    if not args.json:
        print(f"run directory: {runner.run_dir}", flush=True)
    out = runner.train()
    runner.close()
    ev = out["eval"] or {}
    payload = {"run_dir": str(runner.run_dir), "steps": out["steps"],
               "interrupted": out["interrupted"], "eval_mean_reward": ev.get("mean_reward")}
    text = (f"steps: {out['steps']}  eval mean session return: "
            f"{ev.get('mean_reward', float('nan')):.2f}\n"
            f"checkpoint: {runner.run_dir / 'checkpoint.pt'}\n"
            f"tensorboard --logdir {run.run_root}")
    _emit(args, payload, text)
    return 130 if out["interrupted"] else 0


# --------------------------------------------------------------------------- evaluate
def load_trained(checkpoint: str | Path) -> tuple[dict[str, Any], list[Any]]:
    """The validated training config and the trained learners of a ``train`` checkpoint
    (``runs/<run>/checkpoint.pt`` or its run directory)."""
    from agents.checkpoint import load_checkpoint

    path = Path(checkpoint)
    if not path.exists():
        raise ConfigError(f"checkpoint: {str(path)!r} does not exist; give runs/<run>/ or "
                          "runs/<run>/checkpoint.pt")
    if path.is_dir():
        path = path / "checkpoint.pt"
    cfg_path = path.parent / TRAIN_CONFIG_NAME
    if not cfg_path.is_file():
        raise ConfigError(f"checkpoint: {str(cfg_path)!r} is missing; evaluate needs a run made "
                          "by `recsim-marl train` or `recsim-marl demo`")
    if not path.is_file():
        raise ConfigError(f"checkpoint: {str(path)!r} is missing (the run saved no checkpoint)")
    saved = json.loads(cfg_path.read_text())
    saved.pop("env_config", None)
    cfg = validate_config(saved)
    _, _, _, learners = build_recommenders(cfg)
    state = load_checkpoint(path)["learners"]
    names = sorted(state)
    if len(names) == 1:
        learners[0].load_state_dict(state[names[0]])
    else:  # consensus group: recommender_<first slot of each learner>
        for j, learner in enumerate(learners):
            learner.load_state_dict(state[f"recommender_{j}"])
    return cfg, learners


def _check_compatible(trained: Any, target: Any, scenario: str) -> None:
    """A checkpoint acts only where observations and slates have the shapes it was trained
    on: raise a ConfigError naming each difference and the ``--set`` that removes it."""
    from recsim_env.world import ObsLayout

    diffs = [(name, getattr(trained, name), getattr(target, name))
             for name in ("slate_size", "n_candidates", "n_topics", "observe_interest")
             if getattr(trained, name) != getattr(target, name)]
    size_t, size_s = ObsLayout.from_config(trained).size, ObsLayout.from_config(target).size
    if not diffs and size_t != size_s:
        diffs.append(("content_encoder", trained.content_encoder, target.content_encoder))
    if diffs:
        what = ", ".join(f"{n}={a!r} (scenario {scenario}: {b!r})" for n, a, b in diffs)
        fix = " ".join(f"--set env.{n}={str(a).lower() if isinstance(a, bool) else a}"
                       for n, a, _ in diffs)
        raise ConfigError(f"the checkpoint was trained with {what}: its observations "
                          f"({size_t} floats) and slates do not fit this scenario "
                          f"({size_s} floats); evaluate with {fix}")


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Evaluate a trained checkpoint on a scenario with the benchmark's metrics."""
    import torch

    from agents.evaluation import METRIC_KEYS, evaluate_seeds, summarize

    torch.set_num_threads(1)
    cfg, learners = load_trained(args.checkpoint)
    scenario = args.scenario or cfg["env"]["preset"]
    env_over = {k: v for k, v in cfg["env"].items() if k != "preset"} if args.scenario is None \
        else {}
    env_raw = {"env": {"preset": scenario, **env_over}}
    env_raw = apply_overrides(env_raw, [s if s.startswith("env.") else f"env.{s}"
                                        for s in args.set])
    env_config = validate_config({"env": env_raw["env"]})["env_config"]
    _check_compatible(cfg["env_config"], env_config, scenario)
    if not args.json and not args.quiet:
        print(f"evaluating {args.checkpoint} on {scenario}: {args.seeds} seed(s) x "
              f"{args.steps} steps x {args.sessions} sessions", file=sys.stderr)
    from tqdm import tqdm

    seeds = [SeedPlan.world(EVAL, i) for i in range(args.seeds)]
    per_seed = evaluate_seeds(learners if len(learners) > 1 else learners[0], env_config,
                              tqdm(seeds, disable=args.quiet or args.json, desc="evaluate"),
                              n_sessions=args.sessions, steps=args.steps,
                              warmup_steps=args.warmup)
    summary = summarize(per_seed)
    payload = {"checkpoint": str(args.checkpoint), "scenario": scenario, "seeds": seeds,
               "metrics": {k: {"mean": m, "ci95": c} for k, (m, c) in summary.items()},
               "per_seed": per_seed}
    lines = [f"| metric | {scenario} (mean ± 95% CI) |", "|---|---|"]
    lines += [f"| {k} | {fmt_ci(*summary[k])} |" for k in METRIC_KEYS]
    _emit(args, payload, "\n".join(lines))
    return 0


# --------------------------------------------------------------------------- demo
DEMO_COLUMNS = {
    "return": "mean session return: watch time a user spends in one session",
    "ctr": "click-through rate: share of shown items that are clicked",
    "watch_time": "watch time per session step",
    "session_length": "steps a session lasts before the user leaves",
    "cold_start_ctr": "click-through rate on new items (no history yet)",
    "ndcg": "NDCG@k of each slate against the items the true user state ranks best",
}
"""The demo's columns and what each measures (the direction comes from the suite's
``HIGHER_IS_BETTER``)."""
DEMO_CURVE_SEED_OFFSET = 20_000
"""The demo's learning curve is measured on world ``20000 + seed`` (as the suite's)."""
DEMO_CURVE_STEPS = 100
"""World steps in which the learning curve's evaluated sessions start."""


def run_demo(*, preset: str = "default", steps: int = DEMO_STEPS, n_sessions: int = 64,
             seed: int = 0, eval_seeds: int = 3, eval_steps: int = 300, run_root: str = "runs",
             quiet: bool = False) -> dict[str, Any]:
    """Train a DQN with the runner, then evaluate it next to random, most-popular and the
    myopic oracle on held-out seeds; draw its learning curve with random's and the oracle's
    level on the curve's world.

    Returns:
        ``{"preset", "steps", "run_dir", "rows", "keys", "run_root", "curve", "reference",
        "plot"}``; the run directory holds a light checkpoint and ``train_config.json``, so
        ``recsim-marl evaluate <run_dir>`` accepts it.
    """
    import torch

    from agents.checkpoint import to_json
    from agents.evaluation import evaluate, evaluate_seeds, summarize
    from agents.experiments.suite import _scaled
    from agents.factory import make_learner
    from agents.hparams import learner_hparams
    from agents.runner import RunConfig, Runner
    from recsim_env.config import make_config

    torch.set_num_threads(1)
    cfg = make_config(preset)
    # the benchmark's DQN for this scenario (configs/learners/dqn.toml), budget-scaled
    hp = _scaled(learner_hparams("dqn", preset), steps)
    hp["buffer_size"] = min(hp["buffer_size"], max(steps, 1_000))
    dqn = make_learner("dqn", cfg, n_rows=n_sessions, seed=seed, total_steps=steps, **hp)
    curve_seed = DEMO_CURVE_SEED_OFFSET + seed
    run = RunConfig(total_steps=steps, n_sessions=n_sessions, seed=seed,
                    eval_seeds=(curve_seed,), eval_every=max(steps // 5, n_sessions),
                    eval_steps=DEMO_CURVE_STEPS, run_root=run_root, algo="dqn",
                    scenario=preset, progress=not quiet,
                    log_every=max(steps // 20, n_sessions), eval_at_start=True,
                    light_checkpoints=True)  # the replay buffer would be hundreds of MB
    runner = Runner(cfg, {"recommender": dqn}, run)
    # what `recsim-marl train` writes, so that `recsim-marl evaluate <run_dir>` rebuilds it
    train_config = {"env": {"preset": preset},
                    "learner": {"name": "dqn", "kwargs": hp},
                    "run": {"total_steps": steps, "n_sessions": n_sessions, "seed": seed,
                            "eval_seeds": [curve_seed], "eval_every": run.eval_every,
                            "eval_steps": run.eval_steps, "run_root": run_root}}
    (runner.run_dir / TRAIN_CONFIG_NAME).write_text(
        json.dumps(to_json(train_config), indent=2, sort_keys=True))
    if not quiet:
        print(f"training dqn on {preset} for {steps:,} env steps -> {runner.run_dir}",
              file=sys.stderr)
    runner.train()
    runner.close()
    curve = [(int(e["step"]), float(e["mean_reward"])) for e in runner.eval_history]
    policies = {"random": make_learner("random", cfg, seed=seed),
                "most_popular": make_learner("most_popular", cfg, seed=seed),
                "myopic_oracle (privileged)": make_learner("myopic_oracle", cfg, seed=seed),
                "dqn (trained)": dqn}
    # random's and the oracle's level on the learning curve's own world and protocol
    reference = {name: float(evaluate(policies[key], cfg, seed=curve_seed,
                                      n_sessions=n_sessions, steps=DEMO_CURVE_STEPS,
                                      max_session_steps=run.max_session_steps,
                                      ground_truth=False)["return"])
                 for name, key in (("random", "random"),
                                   ("myopic oracle", "myopic_oracle (privileged)"))}
    rows = {}
    keys = tuple(DEMO_COLUMNS)
    from tqdm import tqdm

    seeds = [SeedPlan.world(EVAL, i) for i in range(eval_seeds)]
    for name, policy in tqdm(policies.items(), desc="evaluate", disable=quiet):
        per_seed = evaluate_seeds(policy, cfg, seeds, n_sessions=n_sessions, steps=eval_steps,
                                  warmup_steps=50)
        rows[name] = summarize(per_seed, keys)
    plot = runner.run_dir / "learning_curve.png"
    plot_demo_curve(plot, curve, reference, title=f"dqn on {preset}")
    return {"preset": preset, "steps": steps, "run_dir": str(runner.run_dir), "rows": rows,
            "keys": keys, "run_root": run_root, "curve": curve, "reference": reference,
            "plot": str(plot)}


def plot_demo_curve(path: Path, curve: list[tuple[int, float]], reference: dict[str, float],
                    *, title: str) -> None:
    """The demo's learning curve (eval session return against env steps) with a dashed
    horizontal line per reference policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot([s for s, _ in curve], [r for _, r in curve], "o-", color="C0", lw=2,
            label="dqn (learning)")
    for (name, value), colour in zip(reference.items(), ("C7", "C3", "C2"), strict=False):
        ax.axhline(value, ls="--", color=colour, lw=1.5, label=f"{name} ({value:.1f})")
    ax.set_xlabel("env steps of training")
    ax.set_ylabel("mean session return (higher is better)")
    ax.set_title(title)
    ax.ticklabel_format(axis="x", style="plain")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:,.0f}"))
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def demo_verdict(rows: dict[str, Any]) -> str:
    """One sentence: did the trained DQN beat random, and how much of the gap from random to
    the myopic oracle did it close (session return, mean ± 95% CI)."""
    (d, dc), (r, rc), (o, oc) = (rows[k]["return"] for k in
                                 ("dqn (trained)", "random", "myopic_oracle (privileged)"))
    if not all(map(math.isfinite, (d, r, o))):
        return "Verdict: not enough sessions ended to compare the policies."
    dc, rc = (c if math.isfinite(c) else 0.0 for c in (dc, rc))
    if d - dc > r + rc:
        beat = "beat random (the 95% intervals do not overlap)"
    elif d > r:
        beat = "is above random in mean, but the 95% intervals overlap: not a clear win"
    else:
        beat = "did not beat random"
    gap = f"{100 * (d - r) / (o - r):.0f}%" if o != r else "n/a"
    return (f"Verdict: the trained dqn {beat}: session return {d:.1f} against random's {r:.1f}; "
            f"it closed {gap} of the gap from random to the privileged myopic oracle ({o:.1f}).")


def format_demo(result: dict[str, Any]) -> str:
    """The demo's report: the table, what each column means, the verdict, where the plot is."""
    from agents.experiments.suite import HIGHER_IS_BETTER

    keys = result["keys"]
    lines = [f"\n{result['preset']}: dqn trained for {result['steps']:,} env steps; "
             "evaluated on held-out seeds (mean ± 95% CI)\n",
             "| policy | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, row in result["rows"].items():
        lines.append(f"| {name} | " + " | ".join(fmt_ci(*row[k]) for k in keys) + " |")
    lines.append("")
    width = max(map(len, keys))
    for k in keys:
        better = {True: "higher is better", False: "lower is better"}.get(
            HIGHER_IS_BETTER.get(k), "no better direction")
        lines.append(f"  {k:<{width}}  {DEMO_COLUMNS[k]} ({better})")
    lines.append("  myopic_oracle reads the hidden user state: an upper reference, not a rival.")
    lines.append("")
    lines.append(demo_verdict(result["rows"]))
    lines.append(f"\nLearning curve: {result['plot']}")
    lines.append(f"Evaluate it again (other seeds, --scenario): "
                 f"recsim-marl evaluate {result['run_dir']}")
    lines.append(f"TensorBoard curves: recsim-marl tensorboard --logdir {result['run_root']}  "
                 f"(or: make tensorboard)")
    return "\n".join(lines)


def cmd_demo(args: argparse.Namespace) -> int:
    """What ``make demo`` runs."""
    result = run_demo(preset=args.preset, steps=args.steps, n_sessions=args.sessions,
                      seed=args.seed, eval_seeds=args.eval_seeds, eval_steps=args.eval_steps,
                      run_root=args.run_root, quiet=args.quiet or args.json)
    payload = {**result, "rows": {n: {k: {"mean": m, "ci95": c} for k, (m, c) in r.items()}
                                  for n, r in result["rows"].items()},
               "verdict": demo_verdict(result["rows"])}
    _emit(args, payload, format_demo(result))
    return 0


# --------------------------------------------------------------------------- benchmark
def prepare_replot(source: Path, out_dir: Path) -> None:
    """Copy ``source/results.json`` into ``out_dir`` (created) so that a replot rewrites the
    copy's folder, never its input unless ``out_dir`` is ``source``."""
    import shutil

    out_dir.mkdir(parents=True, exist_ok=True)
    if out_dir.resolve() != source.resolve():
        shutil.copyfile(source / "results.json", out_dir / "results.json")


def cmd_benchmark(args: argparse.Namespace) -> int:
    """Scenarios x policies x seeds; writes results/<suite>/."""
    import torch

    from agents.experiments import suite as suite_mod

    torch.set_num_threads(1)
    try:
        spec = suite_mod.get_suite(args.suite, tiny=args.tiny, scenarios=args.scenarios,
                                   policies=args.policies,
                                   seeds=args.seed_list if args.seed_list else args.seeds)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    from agents.experiments.common import RESULTS_ROOT, new_results_dir

    runs_dir = Path(args.runs_dir) if args.runs_dir else Path("runs") / f"benchmark_{args.suite}"
    if args.replot is not None:
        # read <source>/results.json; write beside it (a new folder) unless --out says where
        source = Path(args.replot) if args.replot else RESULTS_ROOT / args.suite
        if not (source / "results.json").is_file():
            raise ConfigError(f"--replot: no results.json in {str(source)!r}; give the folder "
                              f"of a suite run (e.g. --replot {RESULTS_ROOT / args.suite})")
        out_dir = Path(args.out) if args.out else new_results_dir(f"{source.name}-replot",
                                                                  source.parent)
        prepare_replot(source, out_dir)
        result = suite_mod.replot(spec, out_dir=out_dir, runs_dir=runs_dir)
    else:
        if args.address is not None and args.backend != "ray":
            raise ConfigError("--address names a Ray cluster: it needs --backend ray")
        workers = args.workers
        if args.backend == "ray":  # default: as many runs at once as the cluster has CPUs
            from agents.experiments.ray_backend import init_ray, ray_cpus

            init_ray(args.address)
            workers = workers or ray_cpus()
        out_dir = Path(args.out) if args.out else new_results_dir(args.suite)
        if args.update is not None and not args.policies:
            raise ConfigError("--update needs --policies: the policies to run again")
        result = suite_mod.run_suite(spec, out_dir=out_dir, runs_dir=runs_dir,
                                     workers=workers or 1, backend=args.backend,
                                     address=args.address, update=args.update,
                                     progress=not (args.quiet or args.json))
    payload = {"suite": spec.name, "out_dir": str(out_dir), "runs_dir": str(runs_dir),
               "files": result["files"], "seconds": result["seconds"],
               "targets": result["targets"]}
    text = (f"{spec.name}: {result['n_tasks']} runs in {result['seconds']:.0f} s\n"
            f"results: {out_dir}/ ({', '.join(sorted(Path(f).name for f in result['files']))})\n"
            f"tensorboard --logdir {runs_dir}")
    _emit(args, payload, text)
    return 0


# --------------------------------------------------------------------------- sweep
def cmd_sweep(args: argparse.Namespace) -> int:
    """Ray Tune over a suite's protocol: hyperparameter grid x reporting seeds."""
    import torch

    from agents.experiments import ray_backend
    from agents.experiments import suite as suite_mod
    from agents.experiments.common import new_results_dir

    torch.set_num_threads(1)
    try:
        spec = suite_mod.get_suite(args.suite, tiny=args.tiny, scenarios=[args.scenario],
                                   policies=[args.policy],
                                   seeds=args.seed_list if args.seed_list else args.seeds)
        grid = ray_backend.parse_grid(args.grid)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    name = f"sweep_{args.suite}_{args.scenario}_{args.policy}"
    out_dir = Path(args.out) if args.out else new_results_dir(name)
    runs_dir = Path(args.runs_dir) if args.runs_dir else Path("runs") / name
    result = ray_backend.run_sweep(spec, scenario=args.scenario, policy=args.policy, grid=grid,
                                   out_dir=out_dir, runs_dir=runs_dir, address=args.address,
                                   scheduler=args.scheduler,
                                   max_concurrent=args.max_concurrent,
                                   progress=not (args.quiet or args.json))
    best = max((r for r in result["rows"] if math.isfinite(r["return_mean"])),
               key=lambda r: r["return_mean"], default=None)
    payload = {"out_dir": str(out_dir), "runs_dir": str(runs_dir), "files": result["files"],
               "seconds": result["seconds"], "n_trials": result["n_trials"],
               "best": best and best["point"]}
    text = (f"{name}: {result['n_trials']} trials in {result['seconds']:.0f} s; best: "
            + (f"{best['policy']} (return {best['return_mean']:.2f})" if best else "none")
            + f"\nresults: {out_dir}/ ({', '.join(Path(f).name for f in result['files'])})"
            + f"\ntensorboard --logdir {runs_dir}")
    _emit(args, payload, text)
    return 0


# --------------------------------------------------------------------------- study
def cmd_study(args: argparse.Namespace) -> int:
    """A pre-registered study (``agents.experiments.<study>``); writes results/<study>-<time>/."""
    import shlex

    import torch

    from agents.experiments import consensus_scarcity

    torch.set_num_threads(1)
    command = "recsim-marl study " + " ".join(shlex.quote(a) for a in args.argv)
    result = consensus_scarcity.main(args, command)
    _emit(args, result, f"{args.study}: {result['runs']} runs in {result['seconds']:.0f} s\n"
                        f"results: {result['out_dir']}/ (results.md, results.json, "
                        "<regime>.png)")
    return 0


# --------------------------------------------------------------------------- tensorboard
def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def start_tensorboard(logdir: str | Path, port: int | None = None, host: str = "127.0.0.1"
                      ) -> tuple[subprocess.Popen, str]:
    """Start ``tensorboard --logdir LOGDIR --host 127.0.0.1 --port PORT`` as a subprocess.

    Returns:
        ``(process, url)``; stop it with ``process.terminate()`` or by its pid.
    """
    if port is None:
        port = 6006 if _port_free(host, 6006) else free_port(host)
    cmd = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", host,
           "--port", str(port), "--reload_interval", "5"]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    return proc, f"http://{host}:{port}/"


def cmd_tensorboard(args: argparse.Namespace) -> int:
    """Start TensorBoard on the runs directory, on loopback."""
    logdir = Path(args.logdir)
    if not logdir.exists():
        raise ConfigError(f"--logdir: {str(logdir)!r} does not exist (train something first)")
    proc, url = start_tensorboard(logdir, args.port)
    _emit(args, {"url": url, "pid": proc.pid, "logdir": str(logdir)},
          f"TensorBoard {url} (pid {proc.pid}, logdir {logdir}); stop it with kill {proc.pid}"
          + ("" if args.detach else " or Ctrl-C"))
    sys.stdout.flush()
    if args.detach:
        return 0
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait(timeout=10)
        return 0


# --------------------------------------------------------------------------- parser
def _presets() -> tuple[str, ...]:
    from recsim_env.config import PRESETS

    return PRESETS


def build_parser() -> argparse.ArgumentParser:
    """The ``recsim-marl`` argument parser (every option has help text; errors are one line)."""
    from agents.experiments.common import BACKENDS
    from agents.experiments.names import LEARNED_POLICIES, POLICIES, SUITE_NAMES

    common = ArgumentParser(add_help=False)
    common.add_argument("--quiet", action="store_true", help="no progress bar or chatter")
    common.add_argument("--json", action="store_true",
                        help="print one JSON document on stdout (for scripts)")
    common.add_argument("--debug", action="store_true",
                        help="show the Python traceback of an error instead of one line")
    p = ArgumentParser(prog="recsim-marl", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    presets = _presets()

    s = sub.add_parser("presets", parents=[common], help="list scenarios")
    s.set_defaults(func=cmd_presets)

    s = sub.add_parser("demo", parents=[common],
                       help="train a DQN for about two minutes and compare it to baselines")
    s.add_argument("--preset", default="default", choices=presets, metavar="PRESET",
                   help=f"scenario to train and evaluate on: {', '.join(presets)} "
                        "(default: default)")
    s.add_argument("--steps", type=int_at_least(1), default=DEMO_STEPS,
                   help=f"DQN training env steps (default {DEMO_STEPS:,}, about two minutes "
                        "on one core)")
    s.add_argument("--sessions", type=int_at_least(1), default=64,
                   help="concurrent sessions in training and evaluation (default 64)")
    s.add_argument("--seed", type=int_at_least(0), default=0,
                   help="training seed: world and DQN (default 0)")
    s.add_argument("--eval-seeds", type=int_at_least(2), default=3,
                   help="held-out worlds 10000, 10001, ... to evaluate on; >= 2 for a "
                        "confidence interval (default 3)")
    s.add_argument("--eval-steps", type=int_at_least(1), default=300,
                   help="world steps in which evaluated sessions start (default 300)")
    s.add_argument("--run-root", default="runs",
                   help="folder for the run directory (default runs)")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("train", parents=[common], help="train from a TOML config")
    s.add_argument("config", nargs="?", type=Path, default=None,
                   help="TOML file (configs/*.toml); default: dqn on the default preset")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key by its dotted path, e.g. run.total_steps=1000 "
                        "(repeatable)")
    s.add_argument("--resume", type=Path, default=None,
                   help="checkpoint (or run directory) to continue from, in its own directory")
    s.add_argument("--light-checkpoints", action="store_true",
                   help="save checkpoints without replay buffers (a DQN's is hundreds of MB): "
                        "enough to evaluate; a resumed run refills its buffer from empty, so "
                        "it no longer matches an uninterrupted run")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("evaluate", parents=[common], help="evaluate a checkpoint on a scenario")
    s.add_argument("checkpoint", type=Path, help="runs/<run>/checkpoint.pt (or the run dir)")
    s.add_argument("--scenario", default=None, choices=presets, metavar="PRESET",
                   help=f"scenario: {', '.join(presets)} (default: the training scenario)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="env override, e.g. env.n_candidates=20")
    s.add_argument("--seeds", type=int_at_least(2), default=3,
                   help="held-out world seeds 10000, 10001, ... (>= 2, default 3)")
    s.add_argument("--steps", type=int_at_least(1), default=300,
                   help="measured world steps per seed (default 300)")
    s.add_argument("--warmup", type=int_at_least(0), default=50,
                   help="unmeasured world steps first (default 50)")
    s.add_argument("--sessions", type=int_at_least(1), default=64,
                   help="concurrent sessions (default 64)")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("benchmark", parents=[common],
                       help="scenarios x policies x seeds -> results/<suite>-<time>/")
    s.add_argument("--suite", choices=SUITE_NAMES, default="quick", metavar="SUITE",
                   help="configs/suites/<suite>.toml: quick (small budgets, minutes) or full "
                        "(the committed results/full/, about 27 CPU-minutes) (default quick)")
    s.add_argument("--workers", type=int_at_least(1), default=None,
                   help="runs at once: processes (local, default 1) or Ray tasks (ray, "
                        "default: the cluster's CPUs)")
    s.add_argument("--backend", choices=BACKENDS, default="local",
                   help="local (processes on this machine) or ray (Ray tasks, on a local "
                        "instance or the cluster at --address); same seeds, same results "
                        "(default local)")
    s.add_argument("--address", default=None,
                   help="Ray cluster to run on with --backend ray, e.g. auto or HEAD:6379 "
                        "(default: start a local Ray instance)")
    s.add_argument("--out", default=None,
                   help="output folder (default: a new results/<suite>-<time>/; "
                        "--out results/full rewrites the committed results)")
    s.add_argument("--runs-dir", default=None,
                   help="TensorBoard run folder (default runs/benchmark_<suite>)")
    s.add_argument("--scenarios", nargs="+", default=None, choices=presets, metavar="PRESET",
                   help=f"subset of scenarios: {', '.join(presets)}")
    s.add_argument("--policies", nargs="+", default=None, choices=POLICIES, metavar="POLICY",
                   help=f"subset of policies: {', '.join(POLICIES)}")
    s.add_argument("--seeds", type=int_at_least(1), default=None,
                   help="run only the first N of the suite's reporting seeds")
    s.add_argument("--seed-list", type=int_at_least(0), nargs="+", default=None,
                   metavar="SEED", help="run these reporting seeds (tuning seeds are refused)")
    s.add_argument("--update", default=None, metavar="DIR",
                   help="run only --policies (on --scenarios) again and keep the other runs of "
                        "the suite run in DIR (e.g. results/full) in the new results")
    s.add_argument("--tiny", action="store_true",
                   help="tiny sizes and budgets (tests, smoke runs): seconds, not minutes")
    s.add_argument("--replot", nargs="?", const="", default=None, metavar="DIR",
                   help="redraw the tables and plots from DIR/results.json (default "
                        "results/<suite>) into a new folder beside DIR, or into --out")
    s.set_defaults(func=cmd_benchmark)

    s = sub.add_parser("sweep", parents=[common],
                       help="Ray Tune: a learner's hyperparameter grid x a suite's seeds "
                            "(needs the extra ray)")
    s.add_argument("--suite", choices=SUITE_NAMES, default="quick", metavar="SUITE",
                   help="configs/suites/<suite>.toml: budget, evaluation and reporting seeds "
                        "(default quick)")
    s.add_argument("--scenario", default="default", choices=presets, metavar="PRESET",
                   help=f"scenario: {', '.join(presets)} (default default)")
    s.add_argument("--policy", default="dqn", choices=LEARNED_POLICIES, metavar="POLICY",
                   help=f"learned policy: {', '.join(LEARNED_POLICIES)} (default dqn)")
    s.add_argument("--grid", nargs="+", default=[], metavar="KEY=V1,V2",
                   help="hyperparameter values to try, e.g. lr=1e-3,3e-4 batch_size=32,64 "
                        "(keys of configs/learners/<policy>.toml; default: none, the "
                        "suite's own values)")
    s.add_argument("--seeds", type=int_at_least(1), default=None,
                   help="only the first N of the suite's reporting seeds")
    s.add_argument("--seed-list", type=int_at_least(0), nargs="+", default=None,
                   metavar="SEED", help="these reporting seeds (tuning seeds are refused)")
    s.add_argument("--scheduler", choices=("fifo", "asha"), default="fifo",
                   help="fifo (every trial to its end) or asha (stop lagging trials at the "
                        "learning-curve evaluations) (default fifo)")
    s.add_argument("--max-concurrent", type=int_at_least(1), default=None,
                   help="trials at once (default: the cluster's CPUs)")
    s.add_argument("--address", default=None,
                   help="Ray cluster, e.g. auto or HEAD:6379 (default: a local Ray instance)")
    s.add_argument("--out", default=None,
                   help="output folder (default: a new results/sweep_<suite>_<scenario>_"
                        "<policy>-<time>/)")
    s.add_argument("--runs-dir", default=None,
                   help="Tune's trial folders (default runs/sweep_<suite>_<scenario>_<policy>)")
    s.add_argument("--tiny", action="store_true",
                   help="tiny sizes and budgets (tests, smoke runs)")
    s.set_defaults(func=cmd_sweep)

    s = sub.add_parser("study", parents=[common],
                       help="a pre-registered study -> results/<study>-<time>/")
    s.add_argument("study", choices=("consensus",),
                   help="consensus: consensus vs independent, shared and FedAvg under data "
                        "scarcity (configs/studies/consensus_scarcity.toml)")
    from agents.experiments.consensus_scarcity import add_arguments

    add_arguments(s)
    s.set_defaults(func=cmd_study)

    s = sub.add_parser("tensorboard", parents=[common],
                       help="start TensorBoard on the runs directory (127.0.0.1)")
    s.add_argument("--logdir", default="runs",
                   help="folder of run directories to show (default runs)")
    s.add_argument("--port", type=int_at_least(1), default=None,
                   help="default 6006, or a free port")
    s.add_argument("--detach", action="store_true",
                   help="print the URL and pid and return, leaving the server running")
    s.set_defaults(func=cmd_tensorboard)
    return p


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point (``recsim-marl``).

    Exit status: 0 success, 2 a bad argument or config (one line naming the option, the value
    and what is allowed), 1 any other error (one line; ``--debug`` shows the traceback),
    130 interrupted.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)[1:]
    prog = f"recsim-marl {args.command}"
    try:
        return int(args.func(args) or 0)
    except ValueError as e:  # ConfigError, and the library's bad-input errors
        if args.debug:
            raise
        print(f"{prog}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `recsim-marl presets | head -1`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as e:  # noqa: BLE001 - one line unless --debug
        if args.debug:
            raise
        print(f"{prog}: error: {type(e).__name__}: {_one_line(e)} (rerun with --debug for the "
              "traceback)", file=sys.stderr)
        return 1


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


if __name__ == "__main__":
    raise SystemExit(main())
