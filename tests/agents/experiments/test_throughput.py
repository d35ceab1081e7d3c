"""The throughput benchmark measures every face it promises (a smoke test, no speed asserted)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import throughput  # noqa: E402
import throughput_faces  # noqa: E402


def test_measure_faces_rows() -> None:
    rows = throughput_faces.measure_faces(quick=True, seconds=0.02, repeats=1,
                                          presets=("recsim_ie",))
    faces = {(r["face"], r["sessions"]) for r in rows}
    assert {("aec", 1), ("aec+users", 1), ("view", 1), ("vecenv", 1), ("vecenv", 256),
            ("dummy", 16)} <= faces
    assert all(r["user_steps_per_s"] > 0 for r in rows)
    assert all("x_dummy" in r for r in rows if r["face"] == "vecenv")


def test_throughput_run_includes_faces(monkeypatch) -> None:
    calls = []

    def fake_faces(quick: bool, seconds: float, repeats: int) -> list[dict]:
        calls.append((quick, seconds, repeats))
        return [{"face": "vecenv", "preset": "recsim_ie", "sessions": 256,
                 "user_steps_per_s": 1.0, "x_dummy": 2.0}]

    monkeypatch.setattr(throughput_faces, "measure_faces", fake_faces)
    monkeypatch.setattr(throughput, "SESSIONS", (1,))
    args = argparse.Namespace(quick=True, seconds=0.02, repeats=1, vs_recsim=False, all=False,
                              skip_faces=False, json_only=True)
    result = throughput.run(args)
    assert calls == [(True, 0.3, 1)]
    assert result["rows"][-1]["face"] == "vecenv"
    assert "| vecenv | recsim_ie | 256 | 1 | 2.0 |" in throughput.format_table(result)


def test_paired_ratios_divide_rates_taken_together(monkeypatch):
    import recsim_reference

    rates = iter([1000.0, 2000.0, 4000.0])
    monkeypatch.setattr(recsim_reference, "run_recsim_reference",
                        lambda n_steps, seed: {"steps_per_second": next(rates)})
    monkeypatch.setattr(throughput_faces, "bench_vec",
                        lambda venv, cfg, seconds: {"steps_per_s": 400_000.0})
    monkeypatch.setattr(throughput, "bench_world", lambda preset, n, seconds: 800_000.0)
    res = throughput.paired_ratios(3, 0.01)
    assert [r["x_vecenv"] for r in res["pairs"]] == [400.0, 200.0, 100.0]
    assert res["median_x_vecenv"] == 200.0 and res["median_x_world"] == 400.0
