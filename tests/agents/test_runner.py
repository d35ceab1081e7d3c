import os
import signal

import numpy as np
import pytest
from gymnasium import spaces
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from agents.base import ActContext
from agents.baselines import make_baseline
from agents.callbacks import Callback
from agents.checkpoint import load_checkpoint
from agents.runner import CHECKPOINT_NAME, RunConfig, Runner
from agents.sb3 import SB3Learner
from recsim_env import World, make_config
from recsim_env.aec import user_action_space, user_observation_space
from recsim_env.parallel import provider_action_space

CFG = make_config("default", n_users=8, n_recommenders=2, n_providers=2, n_user_agents=4,
                  n_items_initial=100, n_items_max=300)


class Counting:
    """A tiny stateful learner with its own generator (for providers and users)."""

    privileged = False

    def __init__(self, n_actions, seed, kill_at=None):
        self.rng = np.random.default_rng(seed)
        self.n_actions = n_actions
        self.total = 0.0
        self.calls = 0
        self.kill_at = kill_at

    def act(self, obs, context=None, *, explore=True):
        return self.rng.integers(self.n_actions, size=obs.shape[0])

    def update(self, batch):
        self.total += float(batch.reward.sum())
        self.calls += 1
        if self.kill_at is not None and self.calls == self.kill_at:
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does
        return {"train/loss": self.total}

    def state_dict(self):
        return {"rng": self.rng.bit_generator.state, "total": self.total, "calls": self.calls}

    def load_state_dict(self, s):
        self.rng.bit_generator.state = s["rng"]
        self.total, self.calls = s["total"], s["calls"]


def learners(seed=0, kill_at=None):
    lay = World(CFG).layout
    return {
        "recommender_0": make_baseline("content_similarity", CFG, lay, seed=seed),
        "recommender_1": make_baseline("online_mf", CFG, lay, seed=seed + 1),
        "provider": Counting(CFG.n_topics + 1, seed + 2, kill_at=kill_at),
        "user": Counting(CFG.slate_size + 1, seed + 3),
    }


def run_cfg(tmp_path, **kw):
    base = dict(total_steps=400, eval_every=200, eval_steps=30, log_every=100,
                run_root=str(tmp_path), progress=False, max_session_steps=40,
                provider_episode_steps=50)
    return RunConfig(**{**base, **kw})


def test_tensorboard_has_sb3_and_env_tags(tmp_path):
    runner = Runner(CFG, learners(), run_cfg(tmp_path), )
    out = runner.train()
    runner.close()
    assert out["steps"] >= 400 and not out["interrupted"]
    run_dir = runner.run_dir
    assert run_dir.parent == tmp_path and run_dir.name.startswith("custom__custom__0__")
    assert (run_dir / "config.json").is_file() and (run_dir / CHECKPOINT_NAME).is_file()
    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    scalars = set(acc.Tags()["scalars"])
    for tag in ("rollout/ep_rew_mean", "env/ctr", "eval/mean_reward", "time/fps",
                "rollout/ep_rew_mean_provider", "train/loss_provider", "train/loss_user"):
        assert tag in scalars, (tag, sorted(scalars))
    steps = [e.step for e in acc.Scalars("env/ctr")]
    assert steps == sorted(steps) and steps[-1] >= 400  # x-axis = env steps


def test_mix_of_learner_kinds_over_all_roles(tmp_path):
    w = World(CFG)
    pob = spaces.Box(-np.inf, np.inf, (w.provider_obs_dim,), np.float32)
    uob = user_observation_space(CFG, w.layout.item_dim)
    mix = {
        "recommender_0": make_baseline("myopic_oracle", CFG, w.layout, seed=0),
        "recommender_1": make_baseline("thompson", CFG, w.layout, seed=1),
        "provider_0": SB3Learner("ppo", pob, provider_action_space(CFG), 1, n_steps=32,
                                 batch_size=32, seed=0),
        "provider_1": SB3Learner("dqn", pob, provider_action_space(CFG), 1, seed=1,
                                 learning_starts=50, buffer_size=1000),
        "user": Counting(CFG.slate_size + 1, 5),
        "user_0": SB3Learner("a2c", uob, user_action_space(CFG), 1, n_steps=8, seed=2),
    }
    runner = Runner(CFG, mix, run_cfg(tmp_path, total_steps=600, eval_steps=150))
    out = runner.train()
    runner.close()
    assert out["eval"]["mean_reward"] > 0
    assert mix["provider_0"].model.num_timesteps == 300
    assert mix["user_0"].model.num_timesteps > 0  # acted when its user was in a session
    assert mix["user"].calls > 0


def _trace(runner):
    return (runner.world.state_dict(), {a.name: a.learner.state_dict() for a in runner.assignments})


def _assert_equal(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _assert_equal(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_equal(x, y)
    elif hasattr(a, "shape"):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    else:
        assert a == b


def test_ctrl_c_checkpoint_and_resume_equals_uninterrupted(tmp_path):
    # uninterrupted
    full = Runner(CFG, learners(), run_cfg(tmp_path / "a", eval_every=0))
    full.train()
    full.close()
    # interrupted by SIGINT mid-run (provider update number 90 = world step 90)
    cut = Runner(CFG, learners(kill_at=90), run_cfg(tmp_path / "b", eval_every=0))
    out = cut.train()
    cut.close()
    assert out["interrupted"] and out["steps"] == 180
    ckpt = load_checkpoint(cut.run_dir / CHECKPOINT_NAME)
    assert ckpt["runner"]["steps"] == 180
    # resume in a fresh process-like runner from the checkpoint
    resumed = Runner(CFG, learners(), run_cfg(tmp_path / "c", eval_every=0))
    resumed.resume(cut.run_dir / CHECKPOINT_NAME)
    resumed.train()
    resumed.close()
    assert resumed.steps == full.steps
    _assert_equal(_trace(resumed), _trace(full))


def test_runner_rejects_bad_mappings(tmp_path):
    lay = World(CFG).layout
    with pytest.raises(ValueError, match="unknown agent id 'recomender_0'"):
        Runner(CFG, {"recomender_0": make_baseline("random", CFG, lay)}, run_cfg(tmp_path))
    with pytest.raises(ValueError, match="does not exist"):
        Runner(CFG, {"recommender_7": make_baseline("random", CFG, lay)}, run_cfg(tmp_path))
    with pytest.raises(ValueError, match="eval_seeds must be disjoint"):
        RunConfig(seed=10_001)
    with pytest.raises(ValueError, match="eval_seeds must be at least one world seed"):
        RunConfig(eval_seeds=())


def test_no_checkpoints_eval_at_start_and_one_final_eval(tmp_path):
    run = run_cfg(tmp_path, total_steps=400, eval_every=200, save_checkpoints=False,
                  eval_at_start=True)
    runner = Runner(CFG, learners(), run)
    out = runner.train()
    runner.close()
    assert not (runner.run_dir / CHECKPOINT_NAME).exists()
    # step 0, then every 200 env steps; the end (400) is evaluated once, not twice
    assert [e["step"] for e in runner.eval_history] == [0, 200, 400]
    assert out["eval"] is runner.eval_history[-1]
    acc = EventAccumulator(str(runner.run_dir))
    acc.Reload()
    assert [e.step for e in acc.Scalars("eval/mean_reward")] == [0, 200, 400]


def test_train_in_stages_evaluates_start_once(tmp_path):
    runner = Runner(CFG, learners(), run_cfg(tmp_path, eval_every=0, eval_at_start=True,
                                             save_checkpoints=False))
    runner.train(total_steps=100)
    runner.train(total_steps=200)
    runner.close()
    assert [e["step"] for e in runner.eval_history] == [0, 100, 200]


@pytest.mark.parametrize("kw, field", [
    ({"save_checkpoints": False, "checkpoint_every": 100}, "checkpoint_every"),
    ({"save_checkpoints": 0}, "save_checkpoints"),
    ({"eval_at_start": "yes"}, "eval_at_start"),
])
def test_run_config_rejects_bad_checkpoint_and_eval_options(tmp_path, kw, field):
    with pytest.raises(ValueError, match=field):
        run_cfg(tmp_path, **kw)


def _recommender(cfg, name="most_popular"):
    return {"recommender": make_baseline(name, cfg, World(cfg).layout, seed=0)}


def test_evaluate_follows_sessions_started_in_the_window_to_their_end(tmp_path):
    cfg = make_config("default", n_users=16, n_recommenders=4, n_items_initial=60,
                      n_items_max=200)
    runner = Runner(cfg, _recommender(cfg), run_cfg(tmp_path, eval_seeds=(7, 8)))
    # a one-step window: each slot's first session, followed to its end (old rule: none ended)
    one = runner.evaluate(steps=1)
    assert one["sessions"] == 4 * 2 and one["censored_sessions"] == 0
    assert one["mean_ep_length"] > 1 and np.isfinite(one["mean_reward"])
    # the same sessions by hand, with a fresh copy of the policy (its tie-breaking generator
    # moves on as it acts): the first session of every slot of world seed 7
    twin = _recommender(cfg)["recommender"]
    world = World(cfg, n_sessions=4)
    world.reset(7)
    slots = np.arange(4)
    first, done = np.full(4, np.nan), np.zeros(4, bool)
    while not done.all():
        ctx = ActContext(world, slots, world.sessions.user.copy(), world.candidates.item_id.copy())
        res = world.step(twin.act(world.recommender_obs(), ctx, explore=False))
        new = res.session_ended & ~done
        first[new] = res.session_return[new]
        done |= res.session_ended
    assert one["per_seed_reward"][0] == pytest.approx(first.mean())
    # a longer window counts more sessions; the estimate stays a mean of whole sessions
    longer = runner.evaluate(steps=40)
    assert longer["sessions"] > one["sessions"] and longer["censored_sessions"] == 0
    runner.close()


def test_evaluate_counts_sessions_that_never_end_as_censored(tmp_path):
    cfg = make_config("default", n_users=8, n_recommenders=2, n_items_initial=60,
                      n_items_max=200, patience=None, session_budget=1e9)
    # no time limit either (a truncated session is an ended one)
    runner = Runner(cfg, _recommender(cfg, "random"),
                    run_cfg(tmp_path, eval_seeds=(3,), max_session_steps=10_000))
    ev = runner.evaluate(steps=5)
    assert ev["censored_sessions"] == 2 and ev["sessions"] == 0
    assert np.isnan(ev["mean_reward"])
    runner.close()


def test_train_after_ctrl_c_continues_and_resume_keeps_progress_rows(tmp_path):
    root = tmp_path / "runs"
    cut = Runner(CFG, learners(kill_at=90), run_cfg(root, eval_every=0, log_every=20))
    out = cut.train()
    assert out["interrupted"] and out["steps"] == 180
    # the same runner trains on after Ctrl-C (the stop flag does not stick)
    again = cut.train()
    assert not again["interrupted"] and again["steps"] == 400
    cut.close()
    # a killed run leaves partial temp files; a new runner on the directory removes them
    run_dir = cut.run_dir
    junk = run_dir / ".checkpoint.pt.abc123.tmp"
    junk.write_bytes(b"partial")
    # resume from an interrupted checkpoint in its own run directory
    mid = Runner(CFG, learners(kill_at=90), run_cfg(tmp_path / "mid", eval_every=0, log_every=20))
    mid.train()
    mid.close()
    rows_before = (mid.run_dir / "progress.csv").read_text().strip().splitlines()
    resumed = Runner(CFG, learners(), run_cfg(tmp_path / "mid", eval_every=0, log_every=20),
                     run_dir=mid.run_dir)
    assert not junk.exists() or junk.parent != mid.run_dir
    out = resumed.resume()
    resumed.close()
    assert not out["interrupted"] and out["steps"] == 400
    lines = (mid.run_dir / "progress.csv").read_text().strip().splitlines()
    header = lines[0].split(",")
    col = header.index("time/total_timesteps")
    steps = [float(line.split(",")[col]) for line in lines[1:]]
    assert len(lines) > len(rows_before)           # history kept, new rows appended
    assert steps == sorted(steps) and len(set(steps)) == len(steps)  # no duplicates
    assert steps[0] <= 180 < steps[-1] and steps[-1] == 400
    assert not list(mid.run_dir.glob(".*.tmp"))
    fresh = Runner(CFG, learners(), run_cfg(tmp_path / "x", eval_every=0), run_dir=run_dir)
    fresh.close()
    assert not junk.exists()


def test_ctrl_c_on_the_last_step_is_not_an_interruption(tmp_path):
    # total_steps 400 with 2 sessions = 200 world steps; SIGINT during the last one
    runner = Runner(CFG, learners(kill_at=200), run_cfg(tmp_path, eval_every=0))
    out = runner.train()
    runner.close()
    assert out["steps"] == 400 and not out["interrupted"]
    assert out["eval"] is not None and runner.eval_history[-1]["step"] == 400


class _Sessions(Callback):
    """Collects (start step, return) of every session that ended in training."""

    def __init__(self):
        self.rows = []

    def on_step(self, step):
        for i in np.flatnonzero(step.ended):
            self.rows.append((int(step.started_at[i]), float(step.episode_return[i])))
        return True


def test_training_evaluation_and_suite_count_the_same_session_returns(tmp_path):
    """One loop: the suite's number, evaluate() and a training rollout agree exactly."""
    from agents.evaluation import evaluate
    from agents.experiments.suite import MAX_SESSION_STEPS, get_suite, run_task
    from agents.experiments.common import SeedPlan

    spec = get_suite("quick", tiny=True, scenarios=["default"], policies=["most_popular"],
                     seeds=1)
    seed = spec.seeds[0]
    cfg = make_config("default", **spec.env_overrides)
    world_seed = SeedPlan.world("eval", seed)
    suite = run_task((spec, "default", "most_popular", seed, str(tmp_path / "suite")))
    assert suite["error"] is None
    direct = evaluate(make_baseline("most_popular", cfg, World(cfg).layout, seed=seed), cfg,
                      seed=world_seed, n_sessions=spec.eval_sessions, steps=spec.eval_steps,
                      warmup_steps=spec.warmup_steps, max_session_steps=MAX_SESSION_STEPS)
    # training: the runner's rollout on the same world, the sessions that started in the window
    rec = _Sessions()
    run = RunConfig(total_steps=spec.eval_sessions * 2_000, n_sessions=spec.eval_sessions,
                    seed=world_seed, eval_seeds=(world_seed + 1,), run_root=str(tmp_path),
                    progress=False, max_session_steps=MAX_SESSION_STEPS, save_checkpoints=False)
    runner = Runner(cfg, {"recommender": make_baseline("most_popular", cfg, World(cfg).layout,
                                                       seed=seed)}, run, callbacks=[rec])
    lo, hi = spec.warmup_steps, spec.warmup_steps + spec.eval_steps

    class Enough(Callback):
        def on_step(self, step):  # stop once every session started in the window has ended
            return not (step.started_at.size and runner.world_steps > hi
                        and ((runner.rollout.started_at < lo)
                             | (runner.rollout.started_at >= hi)).all())

    runner.callbacks.append(Enough())
    runner.callbacks[-1].init_callback(runner)
    runner.train()
    runner.close()
    trained = [r for s, r in rec.rows if lo <= s < hi]
    assert len(trained) == direct["sessions"] > 0
    assert np.mean(trained) == pytest.approx(direct["return"], rel=1e-12)
    assert suite["metrics"]["return"] == pytest.approx(direct["return"], rel=1e-12)


def test_light_checkpoints_leave_the_replay_buffer_out_and_resume_from_empty(tmp_path):
    from agents.factory import make_learner

    cfg = make_config("default", n_items_initial=60, n_items_max=200)

    def runner(light, run_dir=None):
        dqn = make_learner("dqn", cfg, seed=0, buffer_size=2_000, batch_size=16, hidden=(16,),
                           learning_starts=32)
        run = RunConfig(total_steps=256, n_sessions=8, eval_steps=5, run_root=str(tmp_path),
                        progress=False, light_checkpoints=light, algo="dqn", scenario="default")
        return Runner(cfg, {"recommender": dqn}, run, run_dir=run_dir), dqn

    sizes = {}
    for light in (False, True):
        r, dqn = runner(light)
        r.train()
        r.close()
        state = load_checkpoint(r.run_dir / CHECKPOINT_NAME)["learners"]["recommender"]
        assert ("replay" in state) is not light
        sizes[light] = (r.run_dir / CHECKPOINT_NAME).stat().st_size
        filled = len(dqn.replay)
    assert sizes[True] < sizes[False] / 2
    # resuming a light checkpoint: the weights come back, the buffer starts empty
    r2, dqn2 = runner(True, run_dir=r.run_dir)
    r2.load()
    assert filled > 0 and len(dqn2.replay) == 0
    for a, b in zip(dqn.q_net.parameters(), dqn2.q_net.parameters()):
        assert np.array_equal(a.detach().numpy(), b.detach().numpy())
    r2.resume(total_steps=320)
    r2.close()
    assert len(dqn2.replay) > 0
