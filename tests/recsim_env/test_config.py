import dataclasses

import numpy as np
import pytest

import recsim_env
from recsim_env.config import ConfigError, EnvConfig, check_field, make_config


def test_presets_listed_and_buildable():
    assert set(recsim_env.PRESETS) >= {"default", "recsim_ie", "cold_start", "long_term"}
    for name in recsim_env.PRESETS:
        cfg = make_config(name)
        assert isinstance(cfg, EnvConfig)
        assert name in recsim_env.PRESET_DESCRIPTIONS


def test_recsim_ie_matches_recsim_constants():
    cfg = make_config("recsim_ie")
    assert (cfg.n_topics, cfg.n_candidates, cfg.slate_size) == (20, 10, 2)
    assert cfg.session_budget == 200 and cfg.no_click_penalty == 0.5
    assert cfg.quality_bonus == pytest.approx(0.9 / 3.4)
    assert cfg.topic_quality_array[0] == -3 and cfg.topic_quality_array[-1] == 3
    assert not (cfg.satiation or cfg.exogenous_drift) and cfg.candidate_source == "fresh"


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("n_users", 0, "n_users must be an int >= 1"),
        ("n_topics", 2.5, r"n_topics must be an int in \[1, 10_000\]"),
        ("slate_size", 50, "slate_size must be <= n_candidates"),
        ("choice_model", "softmax", "choice_model must be one of"),
        ("drift_rate", 1.5, r"drift_rate must be a finite number in \(0, 1\)"),
        ("patience", -1.0, r"patience must be None or a finite number in \(0, 1e\+12\]"),
        ("topic_quality", (1.0, 2.0), "topic_quality must be None or 10"),
        ("n_recommenders", 5000, "n_users must be >= n_recommenders"),
        ("frac_newest", 0.9, "frac_popular must be <= 1 - frac_newest"),
    ],
)
def test_invalid_config_names_field(field, value, match):
    with pytest.raises(ValueError, match=match):
        make_config("default", **{field: value})


def test_unknown_override_and_preset_rejected():
    with pytest.raises(ValueError, match="unknown config field.*n_userz"):
        make_config("default", n_userz=3)
    with pytest.raises(ValueError, match="preset must be one of"):
        make_config("nope")
    with pytest.raises(ValueError, match="either config or preset"):
        recsim_env.parallel_env(make_config(), preset="default")


def test_config_is_frozen_and_replace_validates():
    cfg = make_config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.n_users = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match="n_candidates"):
        dataclasses.replace(cfg, n_candidates=0)


# ---------------------------------------------------------------------------- issue 13 examples
INF, NAN = float("inf"), float("nan")

# Each override the fuzzer found accepted, or refused without naming the field: now one line
# naming the field, the value and what is allowed.
BAD_OVERRIDES = [
    (dict(arrival_rate="x"), "arrival_rate", r"a finite number in \[0, 1e\+06\], got 'x'"),
    (dict(drift_noise=None), "drift_noise", "got None"),
    (dict(topic_quality=5), "topic_quality", "None or a tuple of finite numbers"),
    (dict(observe_interest="False"), "observe_interest", r"a bool \(True or False\)"),
    (dict(exogenous_drift=None), "exogenous_drift", "a bool"),
    (dict(endogenous_drift=NAN), "endogenous_drift", "a bool"),
    (dict(satiation="no"), "satiation", "a bool"),
    (dict(fresh_user_each_session=1), "fresh_user_each_session", "a bool"),
    (dict(arrival_rate=True), "arrival_rate", "got True"),
    (dict(n_users=True), "n_users", "an int"),
    (dict(n_topics=3.0), "n_topics", "an int"),
    (dict(no_click_utility=NAN), "no_click_utility", "a finite number"),
    (dict(no_click_utility=INF), "no_click_utility", "a finite number"),
    (dict(no_click_utility="x"), "no_click_utility", "a finite number"),
    (dict(choice_model="proportional", min_normalizer=-INF), "min_normalizer", "finite"),
    (dict(arrival_rate=INF), "arrival_rate", "finite"),
    (dict(return_delay_mean=INF), "return_delay_mean", "finite"),
    (dict(drift_noise=1e308), "drift_noise", r"in \[0, 10\]"),
    (dict(item_lifetime=10**30), "item_lifetime", r"None or an int in \[1, 1_000_000_000\]"),
    (dict(content_encoder="minilm", content_dim=1000), "content_dim", r"\[1, 384\]"),
    (dict(content_encoder="topic", content_dim=7), "content_dim", "n_topics"),
    (dict(session_budget=INF), "session_budget", "finite"),
    (dict(quality_bonus=1e308), "quality_bonus", r"\[0, 100\]"),
    (dict(quality_noise=1e308), "quality_noise", r"\[0, 100\]"),
    (dict(content_noise=1e308), "content_noise", r"None or a finite number in \[0, 100\]"),
    (dict(provider_skill_std=1e308), "provider_skill_std", r"\[0, 100\]"),
    (dict(n_users=10**12), "n_users", r"fit in 8 GiB .*this config needs about \d+ TiB"),
    (dict(n_topics=10**12), "n_topics", r"an int in \[1, 10_000\]"),
    (dict(n_items_max=10**9, n_items_initial=10), "n_items_max", "needs about .* GiB"),
    (dict(topic_quality=(1.0,) * 9 + (NAN,)), "topic_quality", "finite"),
    (dict(anchor_rate=0.02), "anchor_rate", "different from drift_rate"),
    (dict(choice_model="softmax"), "choice_model", r"one of \('mnl', 'proportional', 'cascade'\)"),
]


@pytest.mark.parametrize("overrides,field,match", BAD_OVERRIDES,
                         ids=[f"{next(iter(o))}={next(iter(o.values()))!r}"[:40]
                              for o, _, _ in BAD_OVERRIDES])
def test_bad_override_gets_one_line_error_naming_field(overrides, field, match):
    with pytest.raises(ConfigError, match=match) as err:
        make_config("default", **overrides)
    msg = str(err.value)
    assert isinstance(err.value, ValueError)
    assert msg.startswith(f"{field} must be ") and "\n" not in msg
    assert err.value.field == field


def test_parallel_env_max_cycles_rejects_bool_like_aec():
    for make in (recsim_env.parallel_env, recsim_env.env):
        with pytest.raises(ValueError, match="max_cycles must be an int >= 1, got True"):
            make(max_cycles=True)


def test_numpy_scalars_count_as_python_numbers():
    cfg = make_config(n_users=np.int64(50), drift_rate=np.float32(0.5), satiation=np.bool_(False),
                      topic_quality=np.linspace(-1, 1, 10))
    assert cfg.n_users == 50 and type(cfg.n_users) is int
    assert cfg.satiation is False and isinstance(cfg.topic_quality, tuple)
    assert cfg == make_config(n_users=50, drift_rate=0.5, satiation=False,
                              topic_quality=tuple(np.linspace(-1, 1, 10)))
    with pytest.raises(ConfigError, match="n_users must be an int"):
        make_config(n_users=np.bool_(True))


def test_config_hashable_and_replace_checks_types():
    cfg = make_config("long_term")
    assert hash(cfg) == hash(make_config("long_term")) and cfg in {cfg}
    assert dataclasses.fields(EnvConfig)[0].default == 1000  # plain dataclass defaults
    with pytest.raises(ConfigError, match="observe_interest must be a bool"):
        dataclasses.replace(cfg, observe_interest="yes")
    with pytest.raises(ConfigError, match="n_users must be"):
        EnvConfig(n_users=-1)
    for build in (lambda: EnvConfig(n_userz=3), lambda: dataclasses.replace(cfg, n_userz=3)):
        with pytest.raises(ValueError, match=r"unknown config field\(s\) \['n_userz'\]"):
            build()


def test_check_field_alone():
    assert check_field("n_topics", np.int64(3)) == 3
    with pytest.raises(ConfigError, match=r"n_topics must be an int in \[1, 10_000\], got 'x'"):
        check_field("n_topics", "x")


# ---------------------------------------------------------------------------- presets compose
def test_presets_derive_fields_after_overrides():
    cfg = make_config("long_term", n_topics=3)
    assert cfg.topic_quality == (-1.5, 0.0, 1.5)
    ie = make_config("recsim_ie", n_recommenders=64)
    assert ie.n_users == 64 and ie.fresh_user_each_session
    assert len(make_config("recsim_ie", n_topics=5).topic_quality) == 5
    # an explicit override of a derived field wins
    cfg = make_config("long_term", n_topics=2, topic_quality=(1.0, 2.0))
    assert cfg.topic_quality == (1.0, 2.0)
    assert make_config("recsim_ie", n_recommenders=4, n_users=9).n_users == 9
    # the envs take the same path
    env = recsim_env.parallel_env(preset="recsim_ie", n_recommenders=64)
    assert len(env.possible_agents) == 64
    recsim_env.parallel_env(preset="long_term", n_topics=3, n_users=40, n_items_initial=40,
                            n_items_max=100).reset(seed=0)


def test_presets_unchanged_by_derivation():
    assert make_config("recsim_ie").n_users == 1
    assert make_config("recsim_ie").topic_quality_array[13] == 0.0
    assert np.allclose(make_config("long_term").topic_quality, np.linspace(-1.5, 1.5, 10))


def test_override_contradicting_preset_names_the_preset_field():
    with pytest.raises(ConfigError, match=r"n_items_initial must be between n_candidates \(10\) "
                                          r"and n_items_max \(100\), got 300; preset 'cold_start' "
                                          r"sets n_items_initial=300: pass n_items_initial along "
                                          r"with n_items_max"):
        make_config("cold_start", n_items_max=100)
    with pytest.raises(ConfigError, match="preset 'recsim_ie' sets candidate_source='fresh'"):
        make_config("recsim_ie", n_providers=2)
    # a bad input of a derived field is reported as itself, before any derivation
    with pytest.raises(ConfigError, match=r"^n_topics must be an int in \[1, 10_000\], got 10"):
        make_config("long_term", n_topics=10**12)


def test_vecenv_memory_bound_names_num_envs():
    from recsim_env.vector import RecommenderVecEnv

    with pytest.raises(ConfigError, match=r"num_envs must be small enough .* needs about"):
        RecommenderVecEnv(10**8, n_users=1000, n_recommenders=4)
