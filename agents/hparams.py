"""Learners' hyperparameters per scenario: read from ``configs/learners/<learner>.toml``.

The TOML tables are the only place hyperparameters are written down; the benchmark suite,
``recsim-marl train``, the demo and the scripts all read them here. A table ``[base]``
applies to every scenario and a table named after a scenario overrides its keys::

    learner_hparams("dqn", "recsim_ie")   # {"gamma": 0.99, "lr": 0.001, ...}

A ``[base]`` table may start with ``extends = "<learner>"``: the learner then starts from that
learner's hyperparameters for the same scenario (``memory_dqn`` is ``dqn`` plus its memory),
so shared values are written once.

The tables ship inside the installed package (``recsim_configs``), so this works from any
directory after ``pip install``.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from importlib.abc import Traversable
from typing import Any

import tomllib

__all__ = ["BASE", "EXTENDS", "config_file", "configs_root", "learner_hparams",
           "learners_with_hparams"]

BASE = "base"
"""The table every scenario starts from."""
EXTENDS = "extends"
"""Key of ``[base]`` naming the learner whose hyperparameters this one starts from."""


def configs_root() -> Traversable:
    """The installed ``configs/`` folder."""
    return resources.files("recsim_configs")


def config_file(*parts: str) -> Traversable:
    """A file under ``configs/`` (``config_file("suites", "full.toml")``)."""
    path = configs_root()
    for p in parts:
        path = path / p
    return path


@cache
def _table(learner: str) -> dict[str, dict[str, Any]]:
    path = config_file("learners", f"{learner}.toml")
    if not path.is_file():
        raise ValueError(f"learner {learner!r} has no hyperparameter table; known: "
                         f"{', '.join(learners_with_hparams())}")
    data = tomllib.loads(path.read_text())
    if BASE not in data:
        raise ValueError(f"configs/learners/{learner}.toml has no [{BASE}] table")
    return data


def _plain(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def learner_hparams(learner: str, scenario: str) -> dict[str, Any]:
    """The hyperparameters of ``learner`` on ``scenario``: the extended learner's (if
    ``[base]`` names one), updated by ``[base]``, then by the scenario's table (lists become
    tuples). A fresh dict each call."""
    table = _table(learner)
    base = dict(table[BASE])
    parent = base.pop(EXTENDS, None)
    if parent == learner:
        raise ValueError(f"configs/learners/{learner}.toml: [{BASE}] extends itself")
    out = learner_hparams(parent, scenario) if parent is not None else {}
    out.update({k: _plain(v) for k, v in base.items()})
    out.update({k: _plain(v) for k, v in table.get(scenario, {}).items()})
    return out


def learners_with_hparams() -> tuple[str, ...]:
    """Learners that have a table under ``configs/learners/``."""
    root = configs_root() / "learners"
    return tuple(sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml")))
