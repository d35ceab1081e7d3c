import dataclasses

import pytest

import recsim_env
from recsim_env.config import EnvConfig, make_config


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
        ("patience", -1.0, r"patience must be None or a finite number in \(0, 1e\+06\]"),
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
