"""The consensus study (agents.experiments.consensus): spec, seeds, callbacks, runs, report."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from agents.base import Transition
from agents.checkpoint import to_json
from agents.experiments import consensus as study
from agents.experiments.common import SeedPlan
from agents.hparams import learner_hparams
from agents.runner import Runner
from agents.stats import mean_ci

ROOT = Path(__file__).resolve().parents[3]


def test_quick_run_reports_intervals_and_seed_plan(tmp_path):
    out, runs = tmp_path / "out", tmp_path / "runs"
    spec = study.study_spec(["dqn"], quick=True, steps=40, eval_steps=2)
    data = study.run_study(spec, out=out, run_root=runs, progress=False)
    for name in ("results.md", "results.json", "curves.png", "disagreement.png"):
        assert (out / name).stat().st_size > 0, name
    md = (out / "results.md").read_text()
    assert "| " + " | ".join(study.TABLE_COLUMNS) + " |" in md
    assert "cohort_topic_skew=1.5" in md and "paired over seeds" in md
    saved = json.loads((out / "results.json").read_text())
    assert saved["meta"]["config"]["n_recommenders"] == study.N_AGENTS
    # both kinds of seeds are recorded; the run used reporting seeds only
    assert saved["seed_plan"]["tuning_seeds"] == [0, 1, 2, 3, 4]
    assert saved["seed_plan"]["reporting_seeds"] == [10, 11, 12, 13, 14]
    block = data["algos"]["dqn"]
    assert block["spec"]["role"] == "reporting" and block["spec"]["seeds"] == [10, 11]
    assert block["spec"]["eval_seeds"] == [20_001]
    s = block["summary"]
    assert s["settings"][0] == "independent" and s["settings"][-1] == "shared"
    assert any("heads personal" in n for n in s["settings"])
    for name in s["settings"]:
        row = s["rows"][name]
        assert row["seeds"] == [10, 11] and row["steps"] == [0, 40]
        # two seeds: a finite interval, the one agents.stats computes
        assert (row["final_mean"], row["final_ci"]) == pytest.approx(mean_ci(row["final"]))
        assert np.isfinite(row["final_ci"]) and np.isfinite(row["curve_ci"]).all()
        assert f"| {name} |" in md
    assert s["rows"]["independent"]["final_disagreement"] > 0
    assert s["rows"]["shared"]["final_disagreement"] == 0
    assert set(block["reference"]) == {"random", "myopic oracle (privileged)"}
    # the report is rebuilt from results.json alone, through the command line's hook
    (out / "results.md").unlink()
    assert study.main(["--replot", "--quiet", "--out", str(out)]) == 0
    assert (out / "results.md").read_text() == md
    # run directories: TensorBoard events, no checkpoints
    assert {p.name for p in (runs / "dqn" / "independent").iterdir()} == {"seed10", "seed11"}
    assert list(runs.rglob("events.out.tfevents*"))
    assert not list(runs.rglob("checkpoint.pt"))


@pytest.mark.parametrize("kwargs, match", [
    (dict(seeds=[0, 10]), "tuning seeds"),                         # a report on a tuning seed
    (dict(seeds=[10], pilot=True), "a pilot runs on tuning seeds"),  # a pilot spoils a seed
    (dict(seeds=[10], eval_seeds=[10_001]), "evaluation worlds of the pilots"),
    (dict(seeds=[10], eval_seeds=[3]), "training worlds"),
    (dict(seeds=6), r"seeds must be in \[1, 5\]"),
])
def test_study_refuses_seeds(kwargs, match):
    with pytest.raises(ValueError, match=match):
        study.study_spec(["dqn"], **kwargs)


def test_seed_plan_and_pilot():
    with pytest.raises(ValueError, match="also tuning seeds"):
        SeedPlan(tuning=(0, 1), reporting=(1, 2))
    assert set(study.SEED_PLAN.tuning).isdisjoint(study.SEED_PLAN.reporting)
    pilot = study.study_spec(["dqn"], pilot=True, seeds=2)
    assert pilot.seeds == (0, 1) and pilot.role == "tuning"
    assert pilot.algos[0].eval_seeds == study.TUNING_EVAL_SEEDS
    report = study.study_spec(["dqn", "ppo"])
    assert report.seeds == study.SEED_PLAN.reporting and report.role == "reporting"
    assert all(a.eval_seeds == study.REPORTING_EVAL_SEEDS for a in report.algos)


def test_script_refuses_a_tuning_seed(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "consensus.py"), "--quick",
                           "--seed-list", "0", "--out", str(tmp_path)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and "tuning seeds" in proc.stderr
    assert not (tmp_path / "results.json").exists()


def test_probe_is_a_callback_that_records_evaluations_and_disagreement(tmp_path):
    spec = study.algo_spec("dqn", quick=True, eval_steps=5, disagreement_every=2)
    coupled = next(s for s in spec.settings if s.kind == "consensus")
    cfg = study.env_config(1.5)
    learners, callbacks, probe = study.build_setting(spec, coupled, cfg, seed=10)
    assert callbacks[-1] is probe and len(callbacks) == 2  # coupling first, then the probe
    runner = Runner(cfg, learners, study.run_config(spec, 10), run_dir=tmp_path,
                    callbacks=callbacks)
    runner.train(total_steps=32)
    runner.train(total_steps=48)
    runner.close()
    assert probe.evaluations == [(e["step"], pytest.approx(e["mean_reward"]))
                                 for e in runner.eval_history]
    assert [s for s, _ in probe.evaluations] == [0, 32, 48]
    # every 2 world steps (16 env steps), and once before the first step
    assert [s for s, _ in probe.samples] == [0, 16, 32, 48]
    assert all(d >= 0 for _, d in probe.samples)
    assert callbacks[0].consensus.n_rounds == runner.world_steps == 6


def test_ppo_run_couples_once_per_rollout(tmp_path):
    spec = study.algo_spec("ppo", quick=True, eval_steps=5)
    setting = next(s for s in spec.settings if s.kind == "consensus")
    r = study.run_one((spec, setting, 10, 1.5, str(tmp_path)))
    assert r["steps"] == [0, 80] and np.isfinite(r["returns"]).all()
    assert r["disagreement_steps"] == [0, 40, 80]
    assert spec.round_every == spec.kwargs["n_steps"] == 8


def test_hparams_come_from_the_table_with_named_overrides():
    for algo in ("dqn", "ppo"):
        spec = study.algo_spec(algo)
        assert spec.kwargs == {**learner_hparams(algo, "default"),
                               **study.STUDY_OVERRIDES[algo]}
        assert spec.shared_kwargs == {k: study.N_AGENTS * spec.kwargs[k]
                                      for k in study.PER_ROW[algo]}
    # the default spec is the committed run's: its kwargs (the rest were learner defaults
    # then, written out now), budget and evaluation
    committed = json.loads((ROOT / "results" / "consensus" / "results.json").read_text())
    for algo, block in committed["algos"].items():
        spec, old = study.algo_spec(algo), block["spec"]
        assert to_json(spec.kwargs).items() >= old["kwargs"].items()
        assert to_json(spec.shared_kwargs) == old["shared_kwargs"]
        assert (spec.steps, spec.eval_steps, spec.eval_points) == (
            old["steps"], old["eval_steps"], old["eval_points"])
        assert [s.name for s in spec.settings] == block["summary"]["settings"]
    spec = study.algo_spec("dqn", overrides={"batch_size": 16, "train_every": 4})
    assert spec.kwargs["batch_size"] == 16 and spec.shared_kwargs["batch_size"] == 128
    assert spec.train_every == spec.round_every == 4
    spec = study.algo_spec("dqn", settings=["ring"], common_init=False, eval_steps=7)
    assert [s.name for s in spec.settings] == ["independent", "ring a=0.5", "shared"]
    assert not spec.common_init and spec.eval_steps == 7
    with pytest.raises(ValueError, match="unknown AlgoSpec fields"):
        study.algo_spec("dqn", eval_step=7)


def test_kwargs_must_be_per_algorithm():
    assert study.parse_kwargs(None) == {}
    assert study.parse_kwargs('{"dqn": {"lr": 0.001}}') == {"dqn": {"lr": 0.001}}
    for bad in ('{"gradient_steps": 4}', '{"dqn": 3}', "not json"):
        with pytest.raises(ValueError, match="--kwargs"):
            study.parse_kwargs(bad)


def test_steps_to_threshold_uses_the_trailing_mean():
    steps = np.array([0, 10, 20, 30])
    curves = np.array([[0.0, 10.0, 10.0, 10.0], [0.0, 0.0, 0.0, 0.0]])
    # trailing two-eval mean: [0, 5, 10, 10] reaches 9 at step 20; the second never does
    hit = study.steps_to(steps, curves, 9.0)
    assert hit[0] == 20 and np.isnan(hit[1])


class _Recorder:
    def __init__(self):
        self.batches = []

    def update(self, batch):
        self.batches.append(batch)
        return {"train/loss": 1.0}


def test_train_every_hands_k_steps_at_once():
    inner = _Recorder()
    wrapped = study.TrainEvery(inner, 2)
    rows = [Transition(np.full((3, 2), i, np.float32), np.zeros((3, 1), np.int64), np.ones(3),
                       np.zeros((3, 2), np.float32), np.zeros(3, bool), np.zeros(3, bool),
                       np.full(3, -1), None) for i in range(4)]
    outs = [wrapped.update(b) for b in rows]
    assert outs == [{}, {"train/loss": 1.0}, {}, {"train/loss": 1.0}]
    assert len(inner.batches) == 2 and inner.batches[0].obs.shape == (6, 2)
    np.testing.assert_array_equal(inner.batches[1].obs[:, 0], [2, 2, 2, 3, 3, 3])


@pytest.mark.parametrize("folder, role", [("consensus", "tuning"),
                                          ("consensus_noisy", "reporting")])
def test_replot_of_the_committed_results(tmp_path, folder, role):
    src = ROOT / "results" / folder / "results.json"
    shutil.copy(src, tmp_path / "results.json")
    data = study.replot(tmp_path)
    assert {b["spec"]["role"] for b in data["algos"].values()} == {role}
    md = (tmp_path / "results.md").read_text()
    assert ("Pilot on tuning seeds" in md) == (role == "tuning")
    committed = json.loads(src.read_text())
    for algo, block in committed["algos"].items():
        assert data["algos"][algo]["summary"]["rows"].keys() == block["summary"]["rows"].keys()
