import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from agents.consensus import ConsensusWrapper, learner_member
from agents.factory import make_learner
from agents.runner import RunConfig, Runner
from recsim_env import make_config

CFG = make_config("default", n_recommenders=3, n_users=30, n_items_initial=60, n_items_max=200,
                  slate_size=1)


def dqns(n=3):
    return [make_learner("dqn", CFG, seed=i, learning_starts=30, batch_size=16,
                         target_update_interval=5, hidden=(16,), cross_dim=4) for i in range(n)]


def test_full_averaging_each_round_is_parameter_sharing(tmp_path):
    ls = dqns()
    cw = ConsensusWrapper(ls, alpha=1.0, topology="complete")  # Metropolis on K3: W = 1/3
    assert cw.disagreement() > 0
    runner = Runner(CFG, {f"recommender_{i}": x for i, x in enumerate(ls)},
                    RunConfig(total_steps=300, run_root=str(tmp_path), progress=False,
                              log_every=100, eval_steps=20), callbacks=[cw])
    runner.train()
    runner.close()
    assert cw.disagreement() < 1e-8  # averaged after every update round
    assert cw.consensus.n_rounds == runner.world_steps
    for a, b in zip(ls[0].q_net.parameters(), ls[2].q_net.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    # targets are the same combination of targets: identical across learners as well
    for a, b in zip(ls[0].q_target.parameters(), ls[1].q_target.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    acc = EventAccumulator(str(runner.run_dir))
    acc.Reload()
    assert {"consensus/disagreement", "consensus/alpha", "consensus/rounds"} <= set(
        acc.Tags()["scalars"])
    state = runner.state_dict()
    assert state["callbacks"][0]["n_rounds"] == cw.consensus.n_rounds


def test_alpha_zero_is_independent_learning():
    ls = dqns(2)
    before = [p.detach().clone() for p in ls[0].q_net.parameters()]
    cw = ConsensusWrapper(ls, alpha=0.0)
    cw.after_update()
    for a, b in zip(before, ls[0].q_net.parameters()):
        assert torch.equal(a, b)


def test_wrapper_rejects_baselines_and_duplicates():
    base = make_learner("random", CFG)
    with pytest.raises(ValueError, match="no torch parameters"):
        learner_member(base)
    d = dqns(1)[0]
    with pytest.raises(ValueError, match="appears twice"):
        ConsensusWrapper([d, d])


def test_sb3_members_include_targets():
    a = make_learner("sb3_dqn", CFG, n_rows=1, seed=0)
    b = make_learner("sb3_dqn", CFG, n_rows=1, seed=1)
    cw = ConsensusWrapper([a, b], alpha=1.0)  # Metropolis on two agents: w = 1/2, averages
    cw.after_update()
    for x, y in zip(a.model.policy.q_net.parameters(), b.model.policy.q_net.parameters()):
        torch.testing.assert_close(x, y)
    m = learner_member(a)
    assert m.target is a.model.policy.q_net_target
    assert np.isfinite(cw.disagreement())


def test_common_init_starts_the_group_from_learner_0():
    ls = dqns(3)
    first = {k: v.detach().clone() for k, v in ls[0].q_net.named_parameters()}
    heads_before = [ls[i].q_net.head[-1].weight.detach().clone() for i in range(3)]
    assert ConsensusWrapper(ls, alpha=0.5).disagreement() > 0  # seeds 0, 1, 2 start apart
    cw = ConsensusWrapper(ls, alpha=0.5, common_init=True, params=lambda n: "head" not in n)
    assert cw.disagreement() == 0.0
    for x in ls:
        for name, p in x.q_net.named_parameters():
            if "head" not in name:
                assert torch.equal(p, first[name]), name
        # the target network starts equal to its online network again
        for name, (p, t) in enumerate(zip(x.q_net.parameters(), x.q_target.parameters())):
            assert torch.equal(p, t), name
    # learner 0 is the source and keeps its weights; personal heads are left alone
    for name, p in ls[0].q_net.named_parameters():
        assert torch.equal(p, first[name])
    for i in range(3):
        assert torch.equal(ls[i].q_net.head[-1].weight, heads_before[i])
    assert not torch.equal(ls[1].q_net.head[-1].weight, ls[0].q_net.head[-1].weight)


def test_common_init_copies_targets_from_learner_0s_target():
    ls = dqns(2)
    with torch.no_grad():
        for p in ls[0].q_target.parameters():
            p.add_(1.0)  # learner 0's target lags its online network
    ConsensusWrapper(ls, alpha=0.5, common_init=True)
    for a, b in zip(ls[1].q_target.parameters(), ls[0].q_target.parameters()):
        assert torch.equal(a, b)
    for a, b in zip(ls[1].q_net.parameters(), ls[0].q_net.parameters()):
        assert torch.equal(a, b)


def test_common_init_rejects_mismatched_members_and_changes_nothing():
    small = dqns(1)[0]
    other = make_learner("dqn", CFG, seed=1, learning_starts=30, batch_size=16, hidden=(8,),
                         cross_dim=4)
    before = [p.detach().clone() for p in other.q_net.parameters()]
    with pytest.raises(ValueError, match="shape"):
        ConsensusWrapper([small, other], common_init=True)
    for a, b in zip(before, other.q_net.parameters()):
        assert torch.equal(a, b)
