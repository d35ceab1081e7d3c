"""`recsim-marl benchmark --suite quick` at a tiny size: every output, the expected columns, the
ordering random < myopic oracle, and TensorBoard curves + hparams rows for training runs."""

import csv
import json
import math

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.plugin_event_accumulator import (
    EventAccumulator as PluginAccumulator,
)

from agents import cli
from agents.evaluation import METRIC_KEYS
from agents.experiments import suite

FILES = ["results.csv", "results.json", "results.md", "learning_curves.png",
         "interest_drift.png"] + [f"bar_{m}.png" for m in suite.HEADLINE]


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    out, runs = root / "results" / "quick", root / "runs"
    rc = cli.main(["benchmark", "--suite", "quick", "--tiny", "--out", str(out),
                   "--runs-dir", str(runs), "--workers", "1", "--quiet"])
    assert rc == 0
    return out, runs


def test_quick_writes_every_output(quick):
    out, _ = quick
    for name in FILES:
        path = out / name
        assert path.is_file() and path.stat().st_size > 0, name
    for name in FILES:
        if name.endswith(".png"):
            assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_quick_csv_has_expected_columns_and_rows(quick):
    out, _ = quick
    spec = suite.get_suite("quick", tiny=True)
    with (out / "results.csv").open() as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == suite.csv_columns()
    for m in (*METRIC_KEYS, "gap_closed"):
        assert f"{m}_mean" in reader.fieldnames and f"{m}_ci95" in reader.fieldnames
    assert {(r["scenario"], r["policy"]) for r in rows} == {
        (s, p) for s in spec.scenarios for p in spec.policies}
    assert not [r for r in rows if r["errors"]], [r["errors"] for r in rows if r["errors"]]
    assert all(int(r["n_seeds"]) == len(spec.seeds) for r in rows)
    # every policy kind of the issue is present
    assert {"random", "myopic_oracle", "long_term_oracle", "dqn", "slateq", "tabular_q",
            "linear_q", "ppo", "sb3_dqn", "consensus_dqn"} <= {r["policy"] for r in rows}


def test_quick_random_below_myopic_oracle_on_default(quick):
    out, _ = quick
    with (out / "results.csv").open() as f:
        rows = {(r["scenario"], r["policy"]): r for r in csv.DictReader(f)}
    rnd = float(rows[("default", "random")]["return_mean"])
    myo = float(rows[("default", "myopic_oracle")]["return_mean"])
    assert math.isfinite(rnd) and rnd < myo
    doc = json.loads((out / "results.json").read_text())
    assert doc["targets"]["default"]["random_below_myopic"] is True


def test_quick_json_and_markdown(quick):
    out, _ = quick
    doc = json.loads((out / "results.json").read_text())
    assert doc["columns"] == suite.csv_columns()
    seeds = doc["seeds"]
    worlds = seeds["world_seeds"]
    assert not set(worlds["train"]) & (set(worlds["eval"]) | set(worlds["curve"]))
    # reported on the reporting seeds only, disjoint from the tuning seeds
    assert seeds["reporting_seeds"] and not set(seeds["tuning_seeds"]) & set(
        seeds["reporting_seeds"])
    assert {r["seed"] for r in doc["runs"]} == set(seeds["reporting_seeds"])
    learned = [r for r in doc["runs"] if r["kind"] == "learned"]
    assert learned and all(r["curve"] for r in learned)  # learning curves were recorded
    md = (out / "results.md").read_text()
    assert "## default" in md and "## Targets" in md and "**" in md and "±" in md


def test_training_runs_write_curves_and_hparams(quick):
    _, runs = quick
    run_dirs = sorted(p for p in runs.iterdir() if p.is_dir() and "__dqn__" in p.name)
    assert run_dirs
    acc = EventAccumulator(str(run_dirs[0]), size_guidance={"tensors": 0, "scalars": 0})
    acc.Reload()
    scalars = set(acc.Tags()["scalars"])
    assert {"eval/mean_reward", "rollout/ep_rew_mean", "hparam/return"} <= scalars
    # one row of the hparams table per run; the table's columns at the root of the runs
    run = PluginAccumulator(str(run_dirs[0]))
    run.Reload()
    assert {"_hparams_/session_start_info", "_hparams_/session_end_info"} <= set(
        run.PluginTagToContent("hparams"))
    root = PluginAccumulator(str(runs))
    root.Reload()
    assert "_hparams_/experiment" in root.PluginTagToContent("hparams")


def test_replot_rewrites_the_outputs_from_results_json(quick, tmp_path):
    import shutil

    out, runs = quick
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "results.md").unlink()
    (copy / "bar_return.png").unlink()
    rc = cli.main(["benchmark", "--suite", "quick", "--tiny", "--replot", str(copy), "--out",
                   str(copy), "--runs-dir", str(runs), "--quiet"])
    assert rc == 0
    assert (copy / "bar_return.png").is_file() and (copy / "results.md").is_file()
    with (out / "results.csv").open() as f:
        before = list(csv.DictReader(f))
    with (copy / "results.csv").open() as f:
        after = list(csv.DictReader(f))
    assert len(before) == len(after)
    for a, b in zip(before, after):  # results.json keeps every run's metrics exactly
        for k, v in a.items():
            if (k.endswith("_mean") or k.endswith("_ci95")) and v:
                assert float(b[k]) == pytest.approx(float(v), rel=1e-9, abs=1e-12)
            else:
                assert b[k] == v


def test_update_reruns_the_named_policies_and_keeps_the_other_runs(quick, tmp_path):
    import shutil

    out, runs = quick
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    rc = cli.main(["benchmark", "--suite", "quick", "--tiny", "--policies", "random",
                   "--scenarios", "default", "--update", str(copy), "--out", str(copy),
                   "--runs-dir", str(runs), "--quiet"])
    assert rc == 0
    before = json.loads((out / "results.json").read_text())
    after = json.loads((copy / "results.json").read_text())
    assert after["update"]["rerun"] == [["default", "random"]]
    assert after["update"]["kept_runs"] == len(before["runs"]) - 3
    key = lambda r: (r["scenario"], r["policy"], r["seed"])  # noqa: E731
    old = {key(r): r for r in before["runs"]}
    assert sorted(old) == sorted(key(r) for r in after["runs"])
    for r in after["runs"]:  # kept runs verbatim; random, run again, gives the same metrics
        assert r["metrics"] == old[key(r)]["metrics"]
    assert "Updated run: random were run again on default" in (copy / "results.md").read_text()
    # --update needs --policies; and a folder with a run of this suite
    assert cli.main(["benchmark", "--suite", "quick", "--tiny", "--update", str(copy),
                     "--quiet"]) == 2
    assert cli.main(["benchmark", "--suite", "quick", "--tiny", "--policies", "random",
                     "--update", str(tmp_path), "--out", str(tmp_path / "x"), "--quiet"]) == 2


def test_suite_refuses_tuning_seeds_and_overlapping_plans():
    from agents.experiments.common import SeedPlan

    spec = suite.get_suite("full")
    assert not set(spec.seeds) & set(spec.seed_plan.tuning)
    with pytest.raises(ValueError, match="tuning seeds"):
        suite.get_suite("full", seeds=[spec.seed_plan.tuning[0]])
    with pytest.raises(ValueError, match="also tuning seeds"):
        SeedPlan((0, 1), (1, 2))
    rc = cli.main(["benchmark", "--suite", "quick", "--seed-list", "0", "--quiet"])
    assert rc == 2


def test_hyperparameters_come_from_the_config_tables():
    from agents.hparams import learner_hparams

    spec = suite.get_suite("full")
    assert spec.hparams("dqn", "recsim_ie") == learner_hparams("dqn", "recsim_ie")
    assert learner_hparams("dqn", "recsim_ie")["gamma"] != learner_hparams("dqn", "default")[
        "gamma"]


def test_replot_writes_beside_its_input_unless_told(quick, tmp_path):
    import shutil

    out, runs = quick
    src = tmp_path / "quick"
    shutil.copytree(out, src)
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    rc = cli.main(["benchmark", "--suite", "quick", "--tiny", "--replot", str(src),
                   "--runs-dir", str(runs), "--quiet"])
    assert rc == 0
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before  # the input is untouched
    (new,) = [p for p in tmp_path.iterdir() if p.name.startswith("quick-replot-")]
    for name in FILES:
        assert (new / name).is_file(), name


def _git(*args, cwd):
    import subprocess

    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True,
                          timeout=120).stdout


def test_suite_and_replot_leave_a_clone_clean(tmp_path, monkeypatch):
    """The default outputs of a run and of ``--replot`` are new folders: on a fresh clone no
    tracked file changes (the committed results/full/ included)."""
    import shutil
    import subprocess
    from pathlib import Path

    repo = Path(__file__).resolve().parents[3]
    if shutil.which("git") is None or not (repo / ".git").exists():
        pytest.skip("needs git and a git checkout")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--shared", str(repo), str(clone)], check=True,
                   timeout=120)
    if not (clone / "results" / "full" / "results.json").is_file():
        pytest.skip("this checkout has no committed results/full/")
    monkeypatch.chdir(clone)
    assert cli.main(["benchmark", "--suite", "full", "--tiny", "--scenarios", "default",
                     "--policies", "random", "myopic_oracle", "--seeds", "2", "--quiet"]) == 0
    (run,) = [p for p in (clone / "results").iterdir() if p.name.startswith("full-")]
    committed = json.loads((clone / "results" / "full" / "results.json").read_text())
    # --replot's default input is the committed results/full/ (a results.json written before
    # the seed plan cannot be replotted: then replot the run just made)
    source = [] if "tuning_seeds" in committed["seeds"] else [str(run.relative_to(clone))]
    assert cli.main(["benchmark", "--suite", "full", "--tiny", "--replot", *source,
                     "--quiet"]) == 0
    assert _git("status", "--porcelain", "--untracked-files=no", cwd=clone) == ""
    made = sorted(p.name for p in (clone / "results").iterdir() if p.name.startswith("full-"))
    assert len(made) == 2 and any("-replot-" in n for n in made), made


def test_benchmark_runs_from_any_directory(tmp_path, monkeypatch):
    """The suite's spec and hyperparameters ship inside the package: no clone needed."""
    monkeypatch.chdir(tmp_path)
    rc = cli.main(["benchmark", "--suite", "quick", "--tiny", "--scenarios", "recsim_ie",
                   "--policies", "random", "--quiet"])
    assert rc == 0
    out = [p for p in (tmp_path / "results").iterdir() if p.name.startswith("quick-")]
    assert len(out) == 1 and (out[0] / "results.json").is_file()
