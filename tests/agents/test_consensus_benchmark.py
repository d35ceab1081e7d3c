"""Smoke test of benchmarks/consensus.py --quick: runs end to end and writes its outputs."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import consensus as bench  # noqa: E402


def test_quick_run_writes_table_json_and_plots(tmp_path):
    out = tmp_path / "out"
    data = bench.main(["--quick", "--algo", "both", "--workers", "1", "--out", str(out),
                       "--run-root", str(tmp_path / "runs")])
    for name in ("results.md", "results.json", "curves.png", "disagreement.png"):
        assert (out / name).stat().st_size > 0, name
    md = (out / "results.md").read_text()
    header = "| " + " | ".join(bench.TABLE_COLUMNS) + " |"
    assert header in md
    assert "cohort_topic_skew=1.5" in md  # the default: heterogeneous cohorts
    saved = json.loads((out / "results.json").read_text())
    assert set(saved["algos"]) == {"dqn", "ppo"} == set(data["algos"])
    assert saved["meta"]["config"]["n_recommenders"] == 8
    assert saved["meta"]["config"]["cohort_topic_skew"] == 1.5
    for algo, block in saved["algos"].items():
        s = block["summary"]
        assert s["settings"][0] == "independent" and s["settings"][-1] == "shared"
        assert any("heads personal" in n for n in s["settings"])
        for name in s["settings"]:
            row = s["rows"][name]
            assert len(row["final"]) == 2  # two seeds
            assert np.isfinite(row["final_mean"]) and row["steps"][0] == 0
            assert len(row["curve_mean"]) == len(row["steps"]) == len(row["curve_ci"])
            assert f"| {name} |" in md
        # independent learners start apart; one shared network has no disagreement
        assert s["rows"]["independent"]["final_disagreement"] > 0
        assert s["rows"]["shared"]["final_disagreement"] == 0
        assert isinstance(s["target"]["met"], bool)
    assert "paired over seeds" in md
    # the report can be rebuilt from results.json alone
    (out / "results.md").unlink()
    bench.main(["--report-only", "--out", str(out)])
    assert (out / "results.md").read_text() == md
    # run directories went to the given root, with TensorBoard events and no checkpoints
    runs = tmp_path / "runs"
    assert list(runs.rglob("events.out.tfevents*"))
    assert not list(runs.rglob("checkpoint.pt"))


def test_statistics_helpers():
    m, ci = bench.mean_ci(np.array([[1.0, 2.0], [3.0, 4.0]]))
    np.testing.assert_allclose(m, [2.0, 3.0])
    np.testing.assert_allclose(ci, bench.t_crit(2) * np.sqrt(2.0) / np.sqrt(2.0))
    steps = np.array([0, 10, 20, 30])
    curves = np.array([[0.0, 10.0, 10.0, 10.0], [0.0, 0.0, 0.0, 0.0]])
    # trailing two-eval mean: [0, 5, 10, 10] reaches 9 at step 20; the second never does
    hit = bench.steps_to(steps, curves, 9.0)
    assert hit[0] == 20 and np.isnan(hit[1])


def test_kwargs_must_be_per_algorithm():
    assert bench.parse_kwargs(None) == {}
    assert bench.parse_kwargs('{"dqn": {"lr": 0.001}}') == {"dqn": {"lr": 0.001}}
    for bad in ('{"gradient_steps": 4}', '{"dqn": 3}', "not json"):
        with pytest.raises(SystemExit, match="--kwargs"):
            bench.parse_kwargs(bad)


def test_algo_spec_fields_and_fresh_seeds(tmp_path):
    spec = bench.algo_spec("dqn", eval_steps=7, eval_seeds=[3, 4], common_init=None)
    assert spec.eval_steps == 7 and spec.eval_seeds == (3, 4) and spec.common_init
    assert not bench.algo_spec("dqn", common_init=False).common_init
    with pytest.raises(ValueError, match="unknown AlgoSpec fields"):
        bench.algo_spec("dqn", eval_step=7)
    out = tmp_path / "out"
    data = bench.main(["--quick", "--algo", "dqn", "--seeds", "2", "--first-seed", "5",
                       "--eval-steps", "30", "--eval-seeds", "77", "--no-common-init",
                       "--out", str(out), "--run-root", str(tmp_path / "runs")])
    spec = data["algos"]["dqn"]["spec"]
    assert spec["seeds"] == [5, 6] and spec["eval_seeds"] == [77] and spec["eval_steps"] == 30
    assert spec["common_init"] is False
    assert "its own random initialisation" in (out / "results.md").read_text()
    assert {p.name for p in (tmp_path / "runs" / "dqn" / "independent").iterdir()} == {
        "seed5", "seed6"}
