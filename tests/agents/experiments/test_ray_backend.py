"""The Ray backend (agents/experiments/ray_backend.py): the suite's runs as Ray tasks give the
local backend's results, and a Tune sweep's trials are the suite's own runs."""

from __future__ import annotations

import csv
import json
import sys

import pytest

from agents import cli
from agents.checkpoint import to_json
from agents.experiments import ray_backend, suite
from agents.experiments.common import run_pool

pytestmark = pytest.mark.ray

TIME_KEYS = ("seconds", "cpu_seconds", "train_seconds", "run_dir")
"""Fields of a run record that name a time or a timestamped folder."""


def _square(x):
    return x * x


def without_times(records):
    return [{k: v for k, v in r.items() if k not in TIME_KEYS} for r in records]


def test_missing_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"pip install 'recsim-marl\[ray\]'"):
        run_pool(_square, [1, 2], backend="ray")


def test_pool_arguments_are_checked():
    with pytest.raises(ValueError, match="backend must be one of local, ray"):
        run_pool(_square, [1], backend="dask")
    with pytest.raises(ValueError, match="needs backend='ray'"):
        run_pool(_square, [1], address="auto")
    rc = cli.main(["benchmark", "--suite", "quick", "--tiny", "--address", "auto", "--quiet"])
    assert rc == 2


def test_grid_parsing_and_checks():
    assert ray_backend.parse_grid(["lr=1e-3,3e-4", "hidden=[16],[32, 32]"]) == {
        "lr": [1e-3, 3e-4], "hidden": [[16], [32, 32]]}
    assert ray_backend.grid_points({"a": [1, 2], "b": [3]}) == [{"a": 1, "b": 3},
                                                                 {"a": 2, "b": 3}]
    for bad, match in ((["lr"], "KEY=V1,V2"), (["lr="], "KEY=V1,V2"),
                       (["lr=1", "lr=2"], "given twice"), (["lr=1e-3,1e-3"], "repeat")):
        with pytest.raises(ValueError, match=match):
            ray_backend.parse_grid(bad)
    spec = suite.get_suite("quick", tiny=True)
    with pytest.raises(ValueError, match="lrr is not a hyperparameter of dqn"):
        ray_backend.check_point(spec, "dqn", "default", {"lrr": 1e-3})
    with pytest.raises(ValueError, match="lr must be a number"):
        ray_backend.check_point(spec, "dqn", "default", {"lr": "fast"})


def test_pool_as_ray_tasks_keeps_job_order(ray_session):
    assert run_pool(_square, list(range(7)), workers=2, backend="ray",
                    progress=False) == [x * x for x in range(7)]


def test_suite_on_ray_equals_the_local_suite(ray_session, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = suite.get_suite("quick", tiny=True, scenarios=["default"],
                           policies=["random", "dqn", "ppo"], seeds=2)
    out = {}
    for backend in ("local", "ray"):
        out[backend] = suite.run_suite(spec, out_dir=tmp_path / backend,
                                       runs_dir=tmp_path / f"runs_{backend}", workers=2,
                                       backend=backend, progress=False)
    local, ray = (json.loads((tmp_path / b / "results.json").read_text())
                  for b in ("local", "ray"))
    assert len(local["runs"]) == 6 and not any(r["error"] for r in local["runs"])
    assert without_times(local["runs"]) == without_times(ray["runs"])
    assert local["rows"] == ray["rows"]
    assert all(r["curve"] for r in ray["runs"] if r["kind"] == "learned")
    for r in ray["runs"]:  # the Ray tasks wrote their runs where the local ones went
        if r["kind"] == "learned":
            assert r["run_dir"].startswith("runs_ray/") and (tmp_path / r["run_dir"]).is_dir()


def test_sweep_trials_are_the_suites_runs(ray_session, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc = cli.main(["sweep", "--suite", "quick", "--tiny", "--scenario", "default",
                   "--policy", "dqn", "--grid", "lr=1e-3,3e-4", "--seeds", "1",
                   "--out", "sweep", "--runs-dir", "tune", "--quiet"])
    assert rc == 0
    doc = json.loads((tmp_path / "sweep" / "results.json").read_text())
    assert [r["point"] for r in doc["rows"]] == [{"lr": 1e-3}, {"lr": 3e-4}]
    assert len(doc["runs"]) == 2 and not any(r["error"] for r in doc["runs"])
    assert not any(r["stopped_early"] for r in doc["runs"])
    spec = suite.get_suite("quick", tiny=True, scenarios=["default"], policies=["dqn"], seeds=1)
    for run in doc["runs"]:  # the same run without Ray: identical metrics and curve
        plain = suite.run_one(ray_backend.trial_spec(spec, run["point"]), "default", "dqn",
                              run["seed"], tmp_path / "plain")
        plain = to_json(plain)
        for key in ("seed", "train_steps", "curve", "metrics", "error"):
            assert plain[key] == run[key], key
    assert doc["runs"][0]["metrics"] != doc["runs"][1]["metrics"]  # lr mattered
    with (tmp_path / "sweep" / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == suite.csv_columns()
    assert [r["policy"] for r in rows] == ["dqn lr=0.001", "dqn lr=0.0003"]
    assert "| dqn lr=0.0003 |" in (tmp_path / "sweep" / "results.md").read_text()
    # Tune saw the intermediate results (the learning-curve evaluations) before the last one
    progress = sorted((tmp_path / "tune").glob("*/sweep_trial_*/progress.csv"))
    assert len(progress) == 2
    with progress[0].open() as f:
        reports = list(csv.DictReader(f))
    assert [r["final"] for r in reports] == ["False", "False", "True"]
    assert [int(r["env_steps"]) for r in reports] == [160, 320, 320]
