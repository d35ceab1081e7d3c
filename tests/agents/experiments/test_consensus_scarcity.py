"""The data-scarcity consensus study (agents.experiments.consensus_scarcity): spec, seeds,
FedAvg, communication, censoring, an end-to-end tiny run."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from agents import cli
from agents.consensus import learner_member
from agents.experiments import consensus_scarcity as cs

ROOT = Path(__file__).resolve().parents[3]
SPEC = ROOT / "configs" / "studies" / "consensus_scarcity.toml"


@pytest.fixture(scope="module")
def spec():
    return cs.load_spec(SPEC)


def tiny_regime(n_agents=3, slots=2, skew=1.0):
    return cs.Regime(name="t", n_agents=n_agents, slots=slots, skew=skew)


def test_committed_spec_is_one_factor_at_a_time(spec):
    centre = next(r for r in spec.regimes if r.name == "centre")
    for r in spec.regimes:
        changed = [k for k in cs.REGIME_KEYS if getattr(r, k) != getattr(centre, k)]
        assert len(changed) <= 1, (r.name, changed)
    assert {m.kind for m in spec.methods} == set(cs.KINDS)
    assert len(spec.seed_plan.reporting) >= 10
    assert set(spec.seed_plan.tuning).isdisjoint(spec.seed_plan.reporting)
    assert spec.eval_points[-1] == spec.budget and spec.hypotheses


def test_spec_refuses_tuning_seeds_and_bad_keys(spec, tmp_path):
    with pytest.raises(ValueError, match="tuning seeds"):
        cs.study_seeds(spec, pilot=False, seeds=[spec.seed_plan.tuning[0]])
    with pytest.raises(ValueError, match="a pilot runs on tuning seeds"):
        cs.study_seeds(spec, pilot=True, seeds=[spec.seed_plan.reporting[0]])
    assert cs.study_seeds(spec, pilot=False, seeds=2) == spec.seed_plan.reporting[:2]
    assert cs.study_seeds(spec, pilot=True, seeds=None) == spec.seed_plan.tuning
    text = SPEC.read_text()
    bad = tmp_path / "overlap.toml"
    bad.write_text(text.replace("tuning_seeds = [0, 1, 2]", "tuning_seeds = [0, 1, 100]"))
    with pytest.raises(ValueError, match="also tuning seeds"):
        cs.load_spec(bad)
    bad.write_text(text.replace("[centre]\n", "[centre]\nagents = 3\n"))
    with pytest.raises(ValueError, match=r"\[centre\]: unknown keys \['agents'\]"):
        cs.load_spec(bad)
    with pytest.raises(ValueError, match="unknown"):
        spec.select(regimes=["nowhere"])


def test_steps_to_threshold_censors_runs_that_never_reach():
    steps = np.array([0, 10, 20, 30])
    curves = np.array([[1.0, 2.0, 5.0, 4.0],    # reaches 5 at 20 (the first time counts)
                       [1.0, 1.0, 1.0, 1.0],    # never: censored (NaN)
                       [9.0, 0.0, 0.0, 0.0]])   # at step 0
    out = cs.steps_to_threshold(steps, curves, np.array([5.0, 5.0, 8.0]))
    assert out[0] == 20 and np.isnan(out[1]) and out[2] == 0


def _group(spec, kind, regime, **kw):
    method = cs.Method(name=kind, kind=kind, **kw)
    cfg = cs.regime_config(dataclasses.replace(spec, users_per_slot=20), regime)
    learners, callbacks, wrapper = cs.build_method(spec, regime, method, cfg, seed=5)
    group = list(dict.fromkeys(learners.values()))
    return method, cfg, learners, group, wrapper


def test_fedavg_replaces_every_network_by_the_average_every_k_rounds(spec):
    regime = tiny_regime()
    _, _, learners, group, wrapper = _group(spec, "fedavg", regime, every=3)
    # slot s -> agent s // slots
    assert [learners[f"recommender_{s}"] for s in range(6)] == [group[i // 2] for i in range(6)]
    members = [learner_member(x) for x in group]
    with torch.no_grad():  # pull the common initialisation apart
        for i, m in enumerate(members):
            for p in m.online.parameters():
                p.add_(float(i + 1))
            for p in m.target.parameters():
                p.mul_(float(i + 2))
    before = [[p.clone() for p in m.online.parameters()] for m in members]
    targets = [[p.clone() for p in m.target.parameters()] for m in members]
    k = spec.train_every * 3  # world steps between averagings (update rounds x their length)
    for _ in range(k - 1):
        assert wrapper.after_update() is None  # local training only
    for m, old in zip(members, before, strict=True):
        assert all(torch.equal(p, q) for p, q in zip(m.online.parameters(), old, strict=True))
    wrapper.after_update()  # the k-th world step: full averaging
    for k, _ in enumerate(before[0]):
        mean = torch.stack([b[k] for b in before]).mean(0)
        tmean = torch.stack([t[k] for t in targets]).mean(0)
        for m in members:
            torch.testing.assert_close(list(m.online.parameters())[k], mean)
            torch.testing.assert_close(list(m.target.parameters())[k], tmean)
    assert wrapper.consensus.n_rounds == 1 and wrapper.disagreement() < 1e-8


def test_every_group_starts_from_one_initialisation(spec):
    _, _, _, group, _ = _group(spec, "independent", tiny_regime())
    first = list(learner_member(group[0]).online.parameters())
    for x in group[1:]:
        assert all(torch.equal(p, q) for p, q in
                   zip(learner_member(x).online.parameters(), first, strict=True))
    _, _, learners, _, _ = _group(spec, "shared", tiny_regime())
    (shared,) = learners.values()
    assert all(torch.equal(p, q) for p, q in
               zip(learner_member(shared).online.parameters(), first, strict=True))


@pytest.mark.parametrize("kind, kw", [("consensus", dict(topology="ring", alpha=0.5)),
                                      ("fedavg", dict(every=2)),
                                      ("consensus", dict(topology="complete", alpha=0.5,
                                                         personal_heads=True))])
def test_communication_accounting(spec, kind, kw):
    regime = tiny_regime(n_agents=4, slots=2)
    spec = dataclasses.replace(spec, train_every=1)  # one update round per world step
    method, cfg, learners, group, wrapper = _group(spec, kind, regime, **kw)
    for _ in range(4):
        wrapper.after_update()
    obs = 11
    comm = cs.communication(method, wrapper, learners, regime, obs, cfg.slate_size, 4)
    online = learner_member(group[0]).online
    target = learner_member(group[0]).target
    if method.personal_heads:
        sel = [n for n, _ in online.named_parameters() if n.startswith(cs.DQN_FEATURES)]
        assert sel and len(sel) < len(list(online.parameters()))
        per_msg = 2 * sum(dict(online.named_parameters())[n].numel() for n in sel)
    else:
        per_msg = sum(p.numel() for p in online.parameters()) + sum(
            p.numel() for p in target.parameters())
    assert comm["params_per_message"] == per_msg
    assert comm["model_params"] == sum(p.numel() for p in online.parameters())
    if kind == "fedavg":  # upload per agent; the server's download doubles the total
        assert comm["rounds"] == 2 and comm["per_agent_per_round"] == per_msg
        assert comm["total"] == 2 * 4 * per_msg * 2
    else:
        deg = 2 if method.topology == "ring" else 3
        assert comm["rounds"] == 4 and comm["per_agent_per_round"] == deg * per_msg
        assert comm["total"] == 4 * deg * per_msg * 4
    row = 2 * obs + cfg.slate_size + 4  # obs, next obs, slate, reward, flags, click
    assert comm["raw_per_row"] == row and comm["raw_total"] == 4 * 4 * 2 * row
    shared = cs.communication(cs.Method(name="s", kind="shared"), None, learners, regime, obs,
                              cfg.slate_size, 4)
    assert shared["total"] == shared["raw_total"] and shared["per_agent_per_round"] == 2 * row
    ind = cs.communication(cs.Method(name="i", kind="independent"), None, learners, regime, obs,
                           cfg.slate_size, 4)
    assert ind["total"] == 0 and ind["per_agent_per_round"] == 0


def test_tiny_study_end_to_end_through_the_command_line(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["study", "consensus", "--spec", str(SPEC), "--tiny", "--seeds", "2", "--regimes",
            "slots1", "--methods", "ring", "--out", str(out), "--runs-dir",
            str(tmp_path / "runs"), "--quiet", "--json"]
    assert cli.main(argv) == 0
    assert json.loads(capsys.readouterr().out)["runs"] == 6
    for name in ("results.md", "results.json", "slots1.png"):
        assert (out / name).stat().st_size > 0, name
    data = json.loads((out / "results.json").read_text())
    assert data["meta"]["role"] == "reporting" and data["meta"]["seeds"] == [100, 101]
    assert data["spec"]["source"]["sha256"] and "--tiny" in data["meta"]["command"]
    block = data["summary"]["slots1"]
    assert list(block["rows"]) == ["independent", "shared", "ring"]
    ring = block["rows"]["ring"]
    assert ring["steps"] == [8, 16] and len(ring["final"]) == 2
    assert ring["communication"]["rounds"] == 16 // data["spec"]["train_every"]
    ref = block["random_per_seed"]
    assert len(ref) == 2 and all(np.isfinite(ref))
    md = (out / "results.md").read_text()
    assert "## slots1: 8 agents x 1 slots" in md and "| ring |" in md
    (out / "results.md").unlink()
    assert cli.main(["study", "consensus", "--replot", str(out), "--quiet"]) == 0
    assert (out / "results.md").read_text() == md
    # an interrupted study resumes from runs.jsonl: every run is there, none is run again
    assert len((out / "runs.jsonl").read_text().splitlines()) == 6
    assert cli.main([*argv, "--resume"]) == 0
    again = json.loads((out / "results.json").read_text())
    assert again["meta"]["resumed_runs"] == 6 and again["runs"] == data["runs"]
    capsys.readouterr()
    # a regime the spec does not have: one-line error, exit status 2, nothing run
    assert cli.main(["study", "consensus", "--spec", str(SPEC), "--regimes", "x"]) == 2
    assert "--regimes: unknown ['x']" in capsys.readouterr().err


def test_cohort_topic_group_gives_an_agents_slots_one_topic():
    from recsim_env import World, make_config

    cfg = make_config("default", n_recommenders=6, n_users=60, cohort_topic_skew=2.0,
                      cohort_topic_group=3)
    world = World(cfg)
    world.reset(0)
    slot = np.arange(world.n_users) % 6
    assert (world.users.interest[np.arange(world.n_users), slot // 3] == 1.0).all()
    ungrouped = World(make_config("default", n_recommenders=6, n_users=60,
                                  cohort_topic_skew=2.0))
    ungrouped.reset(0)
    assert (ungrouped.users.interest[np.arange(60), slot] == 1.0).all()
    assert not (ungrouped.users.interest[np.arange(60), slot // 3] == 1.0).all()
