"""The ``recsim-marl`` console script: configs, overrides, train/evaluate, demo, TensorBoard."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from agents import cli
from recsim_env import PRESETS

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "dqn_default.toml"
SCRIPT = Path(sys.executable).with_name("recsim-marl")
TINY = ["--set", "run.total_steps=256", "--set", "run.n_sessions=8",
        "--set", "run.eval_every=128", "--set", "run.eval_steps=5",
        "--set", "learner.kwargs.learning_starts=32", "--set", "learner.kwargs.buffer_size=500",
        "--set", "learner.kwargs.batch_size=16", "--set", "learner.kwargs.hidden=[16]",
        "--set", "env.n_items_initial=60", "--set", "env.n_items_max=200"]


def run_cli(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_console_script_lists_presets():
    assert SCRIPT.is_file(), "pip install -e . --no-deps installs the recsim-marl script"
    out = subprocess.run([str(SCRIPT), "presets", "--json"], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    presets = json.loads(out)["presets"]
    assert list(presets) == list(PRESETS)
    assert all(isinstance(d, str) and d for d in presets.values())


@pytest.mark.parametrize("toml, key", [
    ("[run]\ntotal_stpes = 5\n", "run.total_stpes"),
    ("[run]\ntotal_steps = 'abc'\n", "run.total_steps"),
    ("[run]\neval_seeds = []\n", "run.eval_seeds"),
    ("[env]\nn_users = 0\n", "env.n_users"),
    ("[env]\npreset = 'nope'\n", "env.preset"),
    ("[env]\nchoice_model = 'bogus'\n", "env.choice_model"),
    ("[env]\ncolour = 'red'\n", "env.colour"),
    ("[learner]\nname = 'nope'\n", "learner.name"),
    ("[learner]\nname = 'dqn'\n[learner.kwargs]\nbogus = 1\n", "learner.kwargs.bogus"),
    ("[learner]\nname = 'dqn'\n[learner.kwargs]\ngamma = 2.0\n", "learner.kwargs.gamma"),
    ("[consensus]\ntopology = 'mesh'\n", "consensus.topology"),
    ("[consensus]\ncommon_init = 1\n", "consensus.common_init"),
    ("[extra]\nx = 1\n", "extra"),
    ("[run\n", "invalid TOML"),
])
def test_bad_config_names_the_key(tmp_path, capsys, toml, key):
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    rc, out, err = run_cli(capsys, "train", path, "--set", f"run.run_root={tmp_path}")
    assert rc == 2
    assert key in err
    assert not list(tmp_path.glob("*__*"))  # nothing was trained


@pytest.mark.parametrize("item, key", [
    ("run.total_steps", "run.total_steps"),  # no '='
    ("run.total_steps=abc", "run.total_steps"),
    ("run.total_steps=-1", "run.total_steps"),
    ("foo.bar=1", "foo.bar"),
    ("run.bogus=1", "run.bogus"),
    ("env.slate_size=50", "env.slate_size"),
    ("learner.kwargs.nope=3", "learner.kwargs.nope"),
])
def test_bad_override_names_the_key(tmp_path, capsys, item, key):
    rc, out, err = run_cli(capsys, "train", CONFIG, "--set", f"run.run_root={tmp_path}",
                           "--set", item)
    assert rc == 2
    assert key in err


@pytest.mark.parametrize("argv, option", [
    (["demo", "--steps", "-5"], "--steps"),
    (["demo", "--sessions", "-1"], "--sessions"),
    (["demo", "--eval-seeds", "0"], "--eval-seeds"),
    (["demo", "--preset", "nope"], "--preset"),
    (["benchmark", "--policies", "dqnn"], "--policies"),
    (["benchmark", "--scenarios", "defualt"], "--scenarios"),
    (["benchmark", "--seeds", "-1"], "--seeds"),
    (["benchmark", "--seeds", "9"], "seeds"),
    (["benchmark", "--workers", "0"], "--workers"),
    (["benchmark", "--suite", "fulll"], "--suite"),
    (["benchmark", "--replot", "no/such/folder"], "--replot"),
    (["train", "--set", "learner.kwargs.lr=abc"], "learner.kwargs.lr"),
    (["train", "--set", "learner.kwargs.hidden=64"], "learner.kwargs.hidden"),
    (["evaluate", "no/such/run"], "checkpoint"),
    (["evaluate", "no/such/run", "--seeds", "1"], "--seeds"),
    (["tensorboard", "--logdir", "no/such/runs"], "--logdir"),
    (["tensorboard", "--port", "x"], "--port"),
])
def test_user_errors_are_one_line_with_status_2(tmp_path, monkeypatch, capsys, argv, option):
    monkeypatch.chdir(tmp_path)  # nothing may be written where the command runs
    if argv[0] == "train":
        argv = [*argv, "--set", f"run.run_root={tmp_path}"]
    try:
        rc = cli.main(argv)
    except SystemExit as e:  # argparse's errors exit from the parser
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and option in err
    assert not list(tmp_path.iterdir())


def test_bad_value_of_any_kind_names_option_value_and_allowed(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["demo", "--steps", "-5"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--steps" in err and "-5" in err and ">= 1" in err


def test_debug_shows_the_traceback_and_other_errors_are_one_line(monkeypatch, capsys):
    def boom(args):
        raise RuntimeError("something\nbroke")

    monkeypatch.setattr(cli, "cmd_presets", boom)
    assert cli.main(["presets"]) == 1  # the parser was built after the patch
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "RuntimeError: something broke" in err
    assert "--debug" in err and "Traceback" not in err
    with pytest.raises(RuntimeError):
        cli.main(["presets", "--debug"])


def test_every_option_has_help_text():
    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if a.choices and a.dest == "command")
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            assert action.help, f"recsim-marl {name} {action.option_strings or action.dest}"


def test_overrides_parse_toml_values():
    cfg = cli.apply_overrides({"run": {}}, ["run.total_steps=1_000", "env.preset=cold_start",
                                            "learner.kwargs.hidden=[8, 8]",
                                            "learner.kwargs.lr=3e-4"])
    assert cfg["run"]["total_steps"] == 1000
    assert cfg["env"]["preset"] == "cold_start"
    assert cfg["learner"]["kwargs"] == {"hidden": [8, 8], "lr": 3e-4}


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.toml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    cfg = cli.validate_config(cli.load_toml(path))
    if "buffer_size" in cfg["learner"]["kwargs"]:
        cfg["learner"]["kwargs"]["buffer_size"] = 1_000  # building is what is tested
    world_config, learners, consensus, group = cli.build_recommenders(cfg)
    assert group and (not consensus) == ("consensus" not in cfg)


def test_consensus_common_init_key():
    cfg = cli.validate_config(cli.load_toml(REPO / "configs" / "consensus_dqn_default.toml"))
    cfg["learner"]["kwargs"]["buffer_size"] = 1_000
    assert cfg["consensus"]["common_init"] is False
    assert cli.build_recommenders(cfg)[2][0].disagreement() > 0
    cfg["consensus"]["common_init"] = True
    assert cli.build_recommenders(cfg)[2][0].disagreement() == 0.0


def test_train_then_evaluate(tmp_path, capsys):
    rc, out, err = run_cli(capsys, "train", CONFIG, *TINY, "--set", f"run.run_root={tmp_path}",
                           "--quiet")
    assert rc == 0, err
    run_dir = Path(out.splitlines()[0].removeprefix("run directory: "))
    assert run_dir.parent == tmp_path and (run_dir / "checkpoint.pt").is_file()
    assert (run_dir / cli.TRAIN_CONFIG_NAME).is_file()
    assert list(run_dir.glob("events.out.tfevents*"))
    rc, out, err = run_cli(capsys, "evaluate", run_dir / "checkpoint.pt", "--scenario",
                           "cold_start", "--seeds", 2, "--steps", 15, "--sessions", 8, "--json")
    assert rc != 0 and "slate_size=3 (scenario cold_start: 1)" in err
    assert "--set env.slate_size=3" in err
    rc, out, err = run_cli(capsys, "evaluate", run_dir / "checkpoint.pt", "--scenario",
                           "cold_start", "--seeds", 2, "--steps", 15, "--sessions", 8, "--json",
                           "--set", "env.slate_size=3")
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["scenario"] == "cold_start" and len(doc["per_seed"]) == 2
    assert 0 < doc["metrics"]["ctr"]["mean"] < 1


def test_train_light_checkpoints_evaluate(tmp_path, capsys):
    rc, out, err = run_cli(capsys, "train", CONFIG, *TINY, "--set", f"run.run_root={tmp_path}",
                           "--quiet", "--light-checkpoints")
    assert rc == 0, err
    run_dir = Path(out.splitlines()[0].removeprefix("run directory: "))
    from agents.checkpoint import load_checkpoint

    assert "replay" not in load_checkpoint(run_dir / "checkpoint.pt")["learners"]["recommender"]
    rc, out, err = run_cli(capsys, "evaluate", run_dir, "--seeds", 2, "--steps", 10,
                           "--sessions", 8, "--json")
    assert rc == 0, err


def test_train_json_prints_the_run_dir(tmp_path, capsys):
    path = tmp_path / "random.toml"
    path.write_text('[learner]\nname = "random"\n[run]\ntotal_steps = 256\nn_sessions = 8\n'
                    'eval_steps = 5\n')
    rc, out, err = run_cli(capsys, "train", path, "--set", f"run.run_root={tmp_path}", "--json")
    assert rc == 0, err
    doc = json.loads(out)
    assert Path(doc["run_dir"]).parent == tmp_path and doc["steps"] >= 256


def test_demo_tells_a_story(tmp_path, capsys):
    rc, out, err = run_cli(capsys, "demo", "--steps", 256, "--sessions", 8, "--eval-seeds", 2,
                           "--eval-steps", 20, "--run-root", tmp_path, "--quiet")
    assert rc == 0, err
    assert "warn" not in (out + err).lower()
    for name in ("random", "most_popular", "myopic_oracle", "dqn"):
        assert name in out
    for key in cli.DEMO_COLUMNS:  # one line per column: what it measures, which way is better
        assert any(line.strip().startswith(key) and "is better" in line
                   for line in out.splitlines()), key
    (verdict,) = [line for line in out.splitlines() if line.startswith("Verdict:")]
    assert "random" in verdict and "% of the gap" in verdict and "oracle" in verdict
    (plot_line,) = [line for line in out.splitlines() if line.startswith("Learning curve: ")]
    plot = Path(plot_line.removeprefix("Learning curve: "))
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    run_dir = plot.parent
    assert run_dir.parent == tmp_path and run_dir.name.startswith("default__dqn__0__")
    # the run folder is one that `recsim-marl evaluate` accepts (a light checkpoint)
    rc, out, err = run_cli(capsys, "evaluate", run_dir, "--seeds", 2, "--steps", 10,
                           "--sessions", 8, "--json")
    assert rc == 0, err
    assert json.loads(out)["scenario"] == "default"


def test_demo_verdict_sentence():
    rows = {"random": {"return": (50.0, 2.0)},
            "myopic_oracle (privileged)": {"return": (90.0, 2.0)},
            "dqn (trained)": {"return": (70.0, 3.0)}}
    v = cli.demo_verdict(rows)
    assert "beat random" in v and "50% of the gap" in v
    rows["dqn (trained)"] = {"return": (51.0, 3.0)}
    assert "not a clear win" in cli.demo_verdict(rows)
    rows["dqn (trained)"] = {"return": (40.0, 3.0)}
    assert "did not beat random" in cli.demo_verdict(rows)


def _get_json(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - loopback only
        return json.loads(r.read().decode())


def test_tensorboard_serves_the_runs_on_loopback(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    for name in ("default__dqn__0__1", "default__ppo__0__1"):
        with SummaryWriter(str(tmp_path / name)) as w:
            for step in range(3):
                w.add_scalar("rollout/ep_rew_mean", float(step), step)
    proc = subprocess.run([str(SCRIPT), "tensorboard", "--logdir", str(tmp_path), "--port",
                           str(cli.free_port()), "--detach", "--json"],
                          capture_output=True, text=True, timeout=60, check=True)
    info = json.loads(proc.stdout)
    assert info["url"].startswith("http://127.0.0.1:")
    pid = info["pid"]
    try:
        tags, deadline = {}, time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                tags = _get_json(info["url"] + "data/plugin/scalars/tags")
            except OSError:
                tags = {}
            if len(tags) == 2:
                break
            time.sleep(0.5)
        assert set(tags) == {"default__dqn__0__1", "default__ppo__0__1"}
        assert "rollout/ep_rew_mean" in tags["default__dqn__0__1"]
    finally:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
    assert not _alive(pid)


def _alive(pid):
    """Running (not gone, not a zombie waiting to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize("args, names", [
    (["--steps", "-5"], "--steps"),
    (["--set", "n_users=abc", "--steps", "10"], "n_users"),
    (["--learner-kwargs", "[1, 2]"], "--learner-kwargs"),
])
def test_train_script_bad_input_is_one_line(tmp_path, args, names):
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), *args,
                           "--run-root", str(tmp_path), "--quiet"],
                          capture_output=True, text=True, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and names in lines[0], proc.stderr
    assert not any(tmp_path.iterdir())  # nothing was written
