"""The throughput study measures every cell it promises (smoke tests, no speed asserted)."""

from __future__ import annotations

import json

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


def test_paired_ratios_divide_rates_taken_together(monkeypatch) -> None:
    rates = iter([1000.0, 2000.0, 4000.0])
    monkeypatch.setattr(recsim_reference, "ensure_recsim_venv", lambda venv=None: None)
    monkeypatch.setattr(recsim_reference, "run_recsim_reference",
                        lambda n_steps, seed, python: {"steps_per_second": next(rates)})
    monkeypatch.setattr(throughput, "RecommenderVecEnv", lambda n, config: None)
    monkeypatch.setattr(throughput, "bench_vec",
                        lambda venv, cfg, seconds: {"user_steps_per_s": 400_000.0})
    monkeypatch.setattr(throughput, "bench_world",
                        lambda preset, n, seconds: {"user_steps_per_s": 800_000.0})
    res = throughput.paired_ratios(3, 0.01)
    assert [r["x_vecenv"] for r in res["pairs"]] == [400.0, 200.0, 100.0]
    assert res["median_x_vecenv"] == 200.0 and res["median_x_world"] == 400.0


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
