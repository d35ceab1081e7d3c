"""The throughput study measures every cell it promises (smoke tests, no speed asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import recsim_env
from agents.experiments import recsim_reference, throughput

PRESETS = ("recsim_ie", "default")
# --quick's faces with smaller sizes, so that a test takes seconds
TINY = dict(presets=PRESETS, sessions=(1, 4), vec_sizes=(1, 8), dummy_envs=2, seconds=0.01)


def test_run_quick_measures_every_cell_with_a_positive_rate() -> None:
    result = throughput.run(throughput.Settings.quick(**TINY))
    cells = [(r["face"], r["preset"], r["sessions"]) for r in result["rows"]]
    expected = {(f, p, n) for p in PRESETS for n in (1, 4) for f in ("world", "parallel")}
    expected |= {("vecenv", p, n) for p in PRESETS for n in (1, 8)}
    expected |= {("view", p, 1) for p in PRESETS} | {("dummy", p, 2) for p in PRESETS}
    expected |= {(f, p, recsim_env.make_config(p).n_recommenders)
                 for p in PRESETS for f in ("aec", "aec+users")}
    assert sorted(cells) == sorted(expected)
    assert all(r["user_steps_per_s"] > 0 for r in result["rows"])
    assert all(r["turns_per_s"] > 0 for r in result["rows"] if r["face"].startswith("aec"))
    assert all(r["x_dummy"] > 0 for r in result["rows"] if r["face"] == "vecenv")
    assert result["recsim"] is None
    assert not any("x_recsim" in r for r in result["rows"])


def test_main_writes_json_and_table(tmp_path, capsys) -> None:
    argv = ["--quick", "--skip-faces", "--presets", "recsim_ie", "--seconds", "0.01",
            "--out", str(tmp_path)]
    assert throughput.main(argv) == 0
    saved = json.loads((tmp_path / "throughput.json").read_text())
    assert [(r["face"], r["sessions"]) for r in saved["rows"]] == [
        ("world", 1), ("parallel", 1), ("world", 64), ("parallel", 64)]
    assert saved["settings"]["seconds"] == 0.01 and saved["settings"]["repeats"] == 1
    out = capsys.readouterr().out
    assert "| world | recsim_ie | 64 |" in out and "throughput.json" in out


def test_run_divides_every_rate_by_recsims(monkeypatch) -> None:
    monkeypatch.setattr(throughput, "_recsim",
                        lambda n_steps, repeats, venv: {"steps_per_second": 100.0})
    monkeypatch.setattr(throughput, "bench_world", lambda p, n, s: {"user_steps_per_s": 400.0})
    monkeypatch.setattr(throughput, "bench_parallel",
                        lambda p, n, s: {"user_steps_per_s": 200.0})
    settings = throughput.Settings(presets=("recsim_ie",), sessions=(1,), faces=False,
                                   recsim_steps=10, seconds=0.01, repeats=1)
    result = throughput.run(settings)
    assert [(r["face"], r["x_recsim"]) for r in result["rows"]] == [
        ("recsim (Google)", 1.0), ("world", 4.0), ("parallel", 2.0)]
    assert "| world | recsim_ie | 1 | 400 | 4.0 | |" in throughput.format_table(result)


def _fake_rates(monkeypatch, recsim_rates):
    rates = iter(recsim_rates)
    monkeypatch.setattr(recsim_reference, "find_recsim_python", lambda venv=None: "python")
    monkeypatch.setattr(recsim_reference, "run_recsim_reference",
                        lambda n_steps, seed, python: {"steps_per_second": next(rates)})
    monkeypatch.setattr(throughput, "RecommenderVecEnv", lambda n, preset: None)
    monkeypatch.setattr(throughput, "bench_vec",
                        lambda venv, cfg, seconds: {"user_steps_per_s": 400_000.0})
    monkeypatch.setattr(throughput, "bench_world", lambda preset, n, seconds: {
        "user_steps_per_s": 800_000.0 if preset == "recsim_ie" else 300_000.0})
    monkeypatch.setattr(throughput, "bench_parallel",
                        lambda preset, n, seconds: {"user_steps_per_s": 3000.0})
    monkeypatch.setattr(throughput, "bench_aec", lambda preset, seconds: {
        "user_steps_per_s": 2000.0, "turns_per_s": 2000.0})
    monkeypatch.setattr(throughput, "bench_training", lambda learner, preset, n, steps, warmup: {
        "env_steps_per_s": {"dqn": 9000.0, "sb3_dqn": 4000.0}[learner]})


def test_issue_table_divides_rates_taken_in_the_same_round(monkeypatch, tmp_path) -> None:
    _fake_rates(monkeypatch, [1000.0, 2000.0, 4000.0])
    reference = tmp_path / "ref.py"
    reference.write_text("def run(n, seconds, seed=0, with_obs=False):\n"
                         "    return {'user_steps_per_s': 400_000.0}\n")
    res = throughput.issue_table(3, 0.01, reference=reference, startup=False)
    assert [r["x_vecenv_ie"] for r in res["rounds"]] == [400.0, 200.0, 100.0]
    by_key = {t["key"]: t for t in res["targets"]}
    assert by_key["x_vecenv_ie"]["measured"] == 200.0 and by_key["x_vecenv_ie"]["met"] is False
    assert by_key["x_world_ie"]["measured"] == 400.0 and by_key["x_world_ie"]["met"] is True
    assert by_key["x_parallel"]["measured"] == 1.5
    assert by_key["x_reference_ie"]["measured"] == 2.0 and by_key["x_reference_ie"]["met"]
    assert by_key["x_reference_default"]["measured"] == 0.75
    assert by_key["dqn_ie"]["measured"] == 9000.0 and by_key["dqn_ie"]["met"] is False
    table = throughput.format_issue_table(res)
    assert "| 200.00x | >= 300x | no |" in table and "| 4,000 | | |" in table


def test_issue_table_without_references_reports_not_measured(monkeypatch) -> None:
    _fake_rates(monkeypatch, [])
    monkeypatch.setattr(recsim_reference, "find_recsim_python", lambda venv=None: None)
    res = throughput.issue_table(2, 0.01, train_steps=0, startup=False)
    by_key = {t["key"]: t for t in res["targets"]}
    assert by_key["x_parallel"]["measured"] is None and by_key["x_parallel"]["met"] is None
    assert by_key["x_reference_ie"]["measured"] is None
    assert by_key["world_default"]["measured"] == 300_000.0
    assert "| not measured | >= 2x |  |" in throughput.format_issue_table(res)
    with pytest.raises(ValueError, match="--reference: no file at"):
        throughput.load_reference(Path("no/such/file.py"))


def test_settings_reject_bad_values() -> None:
    with pytest.raises(ValueError, match="repeats"):
        throughput.Settings(repeats=0)
    with pytest.raises(ValueError, match="sessions"):
        throughput.Settings(sessions=(0,))


RECSIM = recsim_reference.find_recsim_python()


@pytest.mark.skipif(RECSIM is None, reason="no RecSim venv (.venv-recsim); "
                                           "python benchmarks/throughput.py --vs-recsim makes one")
def test_recsim_reference_measures_steps() -> None:
    res = recsim_reference.run_recsim_reference(n_steps=200, seed=0, python=RECSIM,
                                                warmup_steps=0, timeout=120)
    assert res["steps"] == 200 and res["steps_per_second"] > 0
    assert res["env_config"]["slate_size"] == 2
