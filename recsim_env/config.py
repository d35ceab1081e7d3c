"""Configuration of the simulated world: one frozen, validated dataclass plus named presets.

Every knob lives in :class:`EnvConfig`. Variants are made with :func:`make_config`
(``make_config("default", n_users=500)``) or ``dataclasses.replace``.

Every field has a type, a range and finiteness, declared next to it (pydantic v2 in strict
mode: an int field takes an int and not a bool or ``2.0``, a bool field takes ``True`` or
``False`` and not ``"False"``, a float field takes a finite number). Numpy scalars count as
the Python number they hold. The sizes that drive memory have upper bounds, and their
combination is checked against :data:`MAX_STATE_BYTES` (:meth:`EnvConfig.memory_estimate`).
Invalid values fail at construction with a one-line :class:`ConfigError` (a ``ValueError``)
that names the field, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import functools
import reprlib
from collections.abc import Callable, Mapping
from dataclasses import field
from typing import Annotated, Any, Literal, get_args, get_origin

import annotated_types
import numpy as np
import pydantic
from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass

from recsim_env.content import HASHING_DEFAULT_DIM, MINILM_DIM

ChoiceModel = Literal["mnl", "proportional", "cascade"]
CandidateSource = Literal["catalog", "fresh"]
WatchMode = Literal["full", "engaged"]
RecommenderReward = Literal["watch_time", "clicks"]
ContentEncoderName = Literal["hashing", "minilm", "topic", "none"]

CHOICE_MODELS: tuple[str, ...] = get_args(ChoiceModel)
CANDIDATE_SOURCES: tuple[str, ...] = get_args(CandidateSource)
WATCH_MODES: tuple[str, ...] = get_args(WatchMode)
RECOMMENDER_REWARDS: tuple[str, ...] = get_args(RecommenderReward)
CONTENT_ENCODERS: tuple[str, ...] = get_args(ContentEncoderName)

MAX_STATE_BYTES = 8 * 2**30
"""Upper bound on :meth:`EnvConfig.memory_estimate`: larger worlds are refused at
construction (naming the size that drives the estimate) instead of failing in an allocation."""

# Bounds on counts that cost Python objects per agent (spaces, dict entries every step),
# time per topic (the item vocabulary and the content encoder's tables) or a Python loop per
# slate position.
MAX_AGENTS = 100_000
MAX_TOPICS = 10_000
MAX_CANDIDATES = 10_000
MAX_STEPS = 10**9
"""Bound on step counts (lifetimes, windows, thresholds) compared with int64 arrays."""
# Finite scales: bounds under which every world output stays finite in float32 (utilities are
# divided by the temperature, lengths exponentiated, budgets divided by the session budget).
MAX_SCALE = 100.0
MAX_AMOUNT = 1e6
# Budgets and patience may be huge (sessions that never end), not infinite: 1 - budget /
# session_budget is observed.
MAX_BUDGET = 1e12
# The drift solution divides by (drift_rate - anchor_rate): keep the two apart.
MIN_RATE_GAP = 1e-6


class ConfigError(ValueError):
    """An invalid config: one line naming the field, the value and what is allowed.

    Attributes:
        field: the field at fault.
        fields: every field the check involved (``field`` first), e.g. ``n_items_initial``,
            ``n_candidates``, ``n_items_max`` for "between n_candidates and n_items_max".
        value: the value given.
    """

    def __init__(self, field: str, value: Any, expected: str, related: tuple[str, ...] = (),
                 hint: str = "") -> None:
        self.field, self.value, self.expected = field, value, expected
        self.fields = (field, *related)
        self.hint = hint
        msg = f"{field} must be {expected}, got {_short_repr(value)}"
        super().__init__(msg + (f"; {hint}" if hint else ""))

    def with_hint(self, hint: str) -> ConfigError:
        """The same error with a hint appended to its message."""
        return ConfigError(self.field, self.value, self.expected, self.fields[1:], hint)


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxtuple = _REPR.maxlist = _REPR.maxdict = 8


def _short_repr(value: Any) -> str:
    return _REPR.repr(value)


def _plain(value: Any) -> Any:
    """Numpy scalars as the Python scalar they hold; sequences of numbers (lists, arrays) as
    tuples (only ``topic_quality`` takes one, and the config must stay hashable)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, np.ndarray)):
        return tuple(_plain(v) for v in (value.tolist() if isinstance(value, np.ndarray)
                                         else value))
    return value


def _with_one_line_errors(cls: type) -> type:
    """Wrap the pydantic ``__init__``: numpy scalars are taken as Python scalars, and a
    ``ValidationError`` becomes a one-line :class:`ConfigError` naming the field."""
    validated_init = cls.__init__

    @functools.wraps(validated_init)
    def __init__(self: Any, **kwargs: Any) -> None:
        try:
            validated_init(self, **{k: _plain(v) for k, v in kwargs.items()})
        except pydantic.ValidationError as e:
            raise _one_line(cls, e, kwargs) from None

    cls.__init__ = __init__
    return cls


def _one_line(cls: type, err: pydantic.ValidationError, kwargs: dict[str, Any]) -> ValueError:
    first = err.errors()[0]
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, ValueError):  # raised by __post_init__ (cross-field checks)
        return cause
    unknown = sorted(set(kwargs) - set(cls.__pydantic_fields__))
    if unknown:
        return ValueError(f"unknown config field(s) {unknown}; known fields: "
                          f"{sorted(cls.__pydantic_fields__)}")
    name = str(first["loc"][0])
    return ConfigError(name, kwargs.get(name, first.get("input")), _expected(cls, name))


_BOUND_TEXT = {annotated_types.Ge: ">=", annotated_types.Gt: ">", annotated_types.Le: "<=",
               annotated_types.Lt: "<"}


def _num(v: Any) -> str:
    return f"{v:_}" if isinstance(v, int) else f"{v:g}"


def _bounds_text(constraints: list[Any]) -> str:
    lo = hi = None
    for c in constraints:
        for kind, op in _BOUND_TEXT.items():
            if isinstance(c, kind):
                bound = (op, getattr(c, kind.__name__.lower()))
                if op in (">=", ">"):
                    lo = bound
                else:
                    hi = bound
    if lo and hi:
        return (f" in {'[' if lo[0] == '>=' else '('}{_num(lo[1])}, {_num(hi[1])}"
                f"{']' if hi[0] == '<=' else ')'}")
    if lo or hi:
        op, v = lo or hi
        return f" {op} {_num(v)}"
    return ""


def _constraints(meta: list[Any]) -> list[Any]:
    out = []
    for m in meta:
        out.extend(m.metadata if isinstance(m, pydantic.fields.FieldInfo) else [m])
    return out


def _describe_type(tp: Any, constraints: list[Any]) -> str:
    if get_origin(tp) is Annotated:
        base, *meta = get_args(tp)
        return _describe_type(base, constraints + _constraints(meta))
    args = get_args(tp)
    if type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return "None or " + _describe_type(rest[0], constraints)
    if get_origin(tp) is Literal:
        return f"one of {args}"
    if get_origin(tp) is tuple:
        return "a tuple of " + _describe_type(args[0], []).replace("a finite number",
                                                                   "finite numbers")
    names = {bool: "a bool (True or False)", int: "an int", float: "a finite number",
             dict: "a dict"}
    base = get_origin(tp) or tp
    return names.get(base, getattr(base, "__name__", str(base))) + _bounds_text(constraints)


def _expected(cls: type, name: str) -> str:
    info = cls.__pydantic_fields__[name]
    return _describe_type(info.annotation, _constraints(info.metadata))


def _fmt_bytes(n: float) -> str:
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
    i = 0
    while n >= 1024 and i < len(units) - 1:
        n, i = n / 1024, i + 1
    return f"{n:.3g} {units[i]}"


# Every field's type and range: strict types, no NaN or infinity.
_STRICT = ConfigDict(strict=True, allow_inf_nan=False, extra="forbid")

# Field types shared by several fields (ranges are part of the type).
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Decay = Annotated[float, Field(ge=0.0, lt=1.0)]
Scale = Annotated[float, Field(ge=0.0, le=MAX_SCALE)]
Amount = Annotated[float, Field(ge=0.0, le=MAX_AMOUNT)]
Steps = Annotated[int, Field(ge=1, le=MAX_STEPS)]


@_with_one_line_errors
@dataclass(frozen=True, kw_only=True, config=_STRICT)
class EnvConfig:
    """All parameters of the world and of its agents.

    Sizes follow the project's naming: ``n_users``, ``n_topics``, ``n_recommenders``,
    ``n_providers``, ``n_candidates``, ``slate_size``. Users are split into
    ``n_recommenders`` cohorts (user ``u`` belongs to cohort ``u % n_recommenders``); each
    recommender serves one session at a time from its own cohort.

    Each field's annotation is its type and range (``Annotated[int, Field(ge=1)]``); checks
    across fields are in ``__post_init__``. Both raise :class:`ConfigError`.
    """

    # --- population and agents -------------------------------------------------------------
    n_users: Annotated[int, Field(ge=1)] = 1000
    """Bounded by :data:`MAX_STATE_BYTES` (with ``n_topics``), not by a fixed number."""
    n_topics: Annotated[int, Field(ge=1, le=MAX_TOPICS)] = 10
    n_recommenders: Annotated[int, Field(ge=1, le=MAX_AGENTS)] = 4
    n_providers: Annotated[int, Field(ge=0, le=MAX_AGENTS)] = 0
    n_user_agents: Annotated[int, Field(ge=0, le=MAX_AGENTS)] = 0

    # --- slates and candidates ----------------------------------------------------------------
    n_candidates: Annotated[int, Field(ge=1, le=MAX_CANDIDATES)] = 10
    slate_size: Annotated[int, Field(ge=1, le=MAX_CANDIDATES)] = 3
    candidate_source: CandidateSource = "catalog"
    """``catalog``: candidates drawn from the item catalog each step (newest, most clicked,
    uniformly random); ``fresh``: ``n_candidates`` new documents sampled for every session and
    step, never stored (RecSim's ``resample_documents``)."""
    frac_newest: Fraction = 0.2
    frac_popular: Fraction = 0.2

    # --- items ----------------------------------------------------------------------------
    n_items_max: Annotated[int, Field(ge=0)] = 600
    n_items_initial: Annotated[int, Field(ge=0)] = 400
    arrival_rate: Amount = 1.5
    """Mean of the Poisson number of items published per step by background providers."""
    item_lifetime: Steps | None = 400
    """Steps after which an item retires; ``None`` keeps items until the catalog is full."""
    n_background_providers: Annotated[int, Field(ge=1, le=MAX_AGENTS)] = 20
    topic_purity: Annotated[float, Field(gt=0.0, le=1.0)] = 0.7
    """Weight of an item's main topic in its topic mixture (1.0 gives one-hot items)."""
    topic_quality: tuple[Annotated[float, Field(ge=-MAX_SCALE, le=MAX_SCALE)], ...] | None = None
    """Mean quality per topic (length ``n_topics``); ``None`` means zero for every topic."""
    provider_skill_std: Scale = 0.5
    quality_noise: Scale = 0.3
    item_length: Annotated[float, Field(gt=0.0, le=MAX_AMOUNT)] = 4.0
    item_length_log_std: Annotated[float, Field(ge=0.0, le=5.0)] = 0.3
    cold_start_impressions: Steps = 5
    """An item is flagged cold-start while it has fewer impressions than this."""
    publication_cost: Amount = 1.0
    content_encoder: ContentEncoderName = "hashing"
    """How items' content features are made (``recsim_env.content``): ``hashing`` (default,
    dependency-free bag of words of the item's text), ``minilm`` (sentence embeddings, needs
    the ``llm`` extra), ``topic`` (noisy true topic mixture: privileged reference) or ``none``."""
    content_dim: Annotated[int, Field(ge=1, le=65_536)] | None = None
    """Content feature size; ``None``: the encoder's default (hashing 64, MiniLM 384, topic
    ``n_topics``, none 1)."""
    content_noise: Scale | None = None
    """Std of Gaussian noise on content features; ``None``: 0.1 for ``topic``, else 0."""

    # --- users: drift -----------------------------------------------------------------------
    exogenous_drift: bool = True
    drift_rate: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.02
    """Ornstein-Uhlenbeck pull of the interest toward its anchor, per step."""
    drift_noise: Annotated[float, Field(ge=0.0, le=10.0)] = 0.02
    anchor_rate: Decay = 0.001
    """Pull of the anchor toward the user's home interest, per step (the slow movement)."""
    anchor_noise: Annotated[float, Field(ge=0.0, le=10.0)] = 0.01
    endogenous_drift: bool = True
    interest_step: Fraction = 0.3
    satiation: bool = True
    satiation_decay: Decay = 0.8
    satiation_strength: Scale = 0.5
    history_decay: Decay = 0.9
    cohort_topic_skew: Annotated[float, Field(ge=0.0, le=2.0)] = 0.0
    """Heterogeneous cohorts: users of cohort ``c`` get ``+cohort_topic_skew`` on topic
    ``(c // cohort_topic_group) % n_topics`` of their initial interest and home (clipped to
    [-1, 1]). 0 = identical."""
    cohort_topic_group: Annotated[int, Field(ge=1)] = 1
    """Consecutive cohorts (session slots) that share one skewed topic: cohorts ``g * k`` to
    ``g * k + k - 1`` lean to topic ``g % n_topics`` for ``k = cohort_topic_group`` (1: each
    cohort its own topic). Lets one agent serve several slots of one taste."""

    # --- users: sessions and return ---------------------------------------------------------
    session_budget: Annotated[float, Field(ge=1e-3, le=MAX_BUDGET)] = 120.0
    no_click_penalty: Amount = 0.5
    quality_bonus: Scale = 0.9 / 3.4
    patience: Annotated[float, Field(gt=0.0, le=MAX_BUDGET)] | None = 8.0
    """Session ends when patience runs out (KuaiSim's temper). A step without a click costs 1;
    a click costs ``max(0, 1 - 2 * satisfaction)`` (only disappointing clicks, with negative
    utility, cost anything). ``None`` disables patience."""
    fresh_user_each_session: bool = False
    """Draw a brand-new user for every session (RecSim's episodic users)."""
    return_delay_mean: Amount = 20.0
    retention_strength: Annotated[float, Field(ge=0.0, le=20.0)] = 2.0
    return_window: Annotated[int, Field(ge=0, le=MAX_STEPS)] = 50

    # --- choice and response ------------------------------------------------------------------
    choice_model: ChoiceModel = "mnl"
    choice_temperature: Annotated[float, Field(ge=1e-3, le=1e3)] = 0.25
    no_click_utility: Annotated[float, Field(ge=-1e3, le=1e3)] = 0.0
    no_click_mass: Annotated[float, Field(ge=-1e3, le=1e3)] = 1.0
    min_normalizer: Annotated[float, Field(ge=-1e3, le=1e3)] = -1.0
    position_bias: Annotated[float, Field(gt=0.0, le=1.0)] = 0.8
    quality_in_choice: Scale = 0.0
    watch_mode: WatchMode = "engaged"
    watch_sharpness: Annotated[float, Field(gt=0.0, le=1e3)] = 3.0

    # --- rewards and observations -----------------------------------------------------------
    recommender_reward: RecommenderReward = "watch_time"
    observe_interest: bool = False

    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        """Checks across fields (each field's own type and range is checked before)."""

        def need(cond: bool, name: str, expected: str, *related: str) -> None:
            if not cond:
                raise ConfigError(name, getattr(self, name), expected, related)

        need(self.n_users >= self.n_recommenders, "n_users",
             f">= n_recommenders ({self.n_recommenders}) so every cohort has a user",
             "n_recommenders")
        need(self.slate_size <= self.n_candidates, "slate_size",
             f"<= n_candidates ({self.n_candidates})", "n_candidates")
        need(self.n_user_agents <= self.n_users, "n_user_agents", f"<= n_users ({self.n_users})",
             "n_users")
        need(self.frac_newest + self.frac_popular <= 1.0, "frac_popular",
             f"<= 1 - frac_newest ({1 - self.frac_newest})", "frac_newest")
        if self.candidate_source == "catalog":
            need(self.n_items_max >= 2 * self.n_candidates, "n_items_max",
                 f">= 2 * n_candidates ({2 * self.n_candidates})", "n_candidates")
            need(self.n_candidates <= self.n_items_initial <= self.n_items_max, "n_items_initial",
                 f"between n_candidates ({self.n_candidates}) and n_items_max "
                 f"({self.n_items_max})", "n_candidates", "n_items_max")
        else:
            need(self.n_providers == 0, "n_providers",
                 "0 when candidate_source='fresh' (fresh documents have no provider)",
                 "candidate_source")
        if self.topic_quality is not None:
            need(len(self.topic_quality) == self.n_topics, "topic_quality",
                 f"None or {self.n_topics} finite numbers (one per topic, n_topics="
                 f"{self.n_topics})", "n_topics")
        if self.content_encoder == "topic":
            need(self.content_dim in (None, self.n_topics), "content_dim",
                 f"None or n_topics ({self.n_topics}) with content_encoder='topic'",
                 "content_encoder", "n_topics")
        elif self.content_encoder == "minilm":
            need(self.content_dim is None or self.content_dim <= MINILM_DIM, "content_dim",
                 f"None or an int in [1, {MINILM_DIM}] with content_encoder='minilm' "
                 f"(MiniLM's embeddings have {MINILM_DIM} dims)", "content_encoder")
        need(abs(self.drift_rate - self.anchor_rate) >= MIN_RATE_GAP, "anchor_rate",
             f"different from drift_rate ({self.drift_rate}) by at least {MIN_RATE_GAP:g} "
             "(the anchor moves slower)", "drift_rate")
        need(self.no_click_mass - self.min_normalizer > 0, "no_click_mass",
             f"> min_normalizer ({self.min_normalizer})", "min_normalizer")
        need(isinstance(self.extra, dict), "extra", "a dict")
        self.check_memory()

    # ------------------------------------------------------------------ derived values
    @property
    def content_noise_value(self) -> float:
        """The content noise in force (see ``content_noise``)."""
        if self.content_noise is not None:
            return float(self.content_noise)
        return 0.1 if self.content_encoder == "topic" else 0.0

    @property
    def content_dim_value(self) -> int:
        """The content feature size in force (see ``content_dim``)."""
        if self.content_dim is not None:
            return self.content_dim
        return {"hashing": HASHING_DEFAULT_DIM, "minilm": MINILM_DIM, "topic": self.n_topics,
                "none": 1}[self.content_encoder]

    @property
    def cohort_size(self) -> int:
        """Users per recommender cohort (the largest cohort when they do not divide evenly)."""
        return -(-self.n_users // self.n_recommenders)

    @property
    def n_newest(self) -> int:
        """Candidates taken from the newest items (catalog mode)."""
        return int(round(self.frac_newest * self.n_candidates))

    @property
    def n_popular(self) -> int:
        """Candidates taken from the most clicked items (catalog mode)."""
        return min(int(round(self.frac_popular * self.n_candidates)),
                   self.n_candidates - self.n_newest)

    @property
    def n_random(self) -> int:
        """Candidates drawn uniformly from the other active items (catalog mode)."""
        return self.n_candidates - self.n_newest - self.n_popular

    @functools.cached_property
    def topic_quality_array(self) -> np.ndarray:
        """Mean quality per topic: (n_topics,) float64, read-only (computed once)."""
        if self.topic_quality is None:
            q = np.zeros(self.n_topics)
        else:
            q = np.array(self.topic_quality, dtype=np.float64)
        q.flags.writeable = False
        return q

    # ------------------------------------------------------------------ memory
    def memory_estimate(self, n_sessions: int | None = None) -> dict[str, int]:
        """Rough bytes of the world's arrays, by part: ``users`` (population), ``catalog``,
        ``step`` (candidates, observations and temporaries of one step over every session)
        and ``encoder`` (the content encoder's tables).

        Args:
            n_sessions: concurrent session slots (default ``n_recommenders``; the VecEnv runs
                one per env and scales the population to ``cohort_size`` users per slot).
        """
        s = self.n_recommenders if n_sessions is None else int(n_sessions)
        n_users = self.n_users if s == self.n_recommenders else self.cohort_size * s
        T, c, d = self.n_topics, self.n_candidates, self.content_dim_value
        obs_size = 2 * T + 3 + c * (d + 4)
        catalog = 0
        if self.candidate_source == "catalog":
            catalog = self.n_items_max * (4 * T + 4 * d + 8 * 8 + 5 * 4)
        text_encoder = self.content_encoder in ("hashing", "minilm")
        return {
            "users": n_users * (5 * 8 * T + 2 * 8),
            "catalog": catalog,
            "step": s * (c * (8 * T + 4 * d + 8 * 8) + 2 * 4 * obs_size + 6 * 8 * T),
            "encoder": (4 * T + 64) * d * 4 if text_encoder else 0,
        }

    def check_memory(self, n_sessions: int | None = None, name: str | None = None) -> None:
        """Raise :class:`ConfigError` when :meth:`memory_estimate` exceeds
        :data:`MAX_STATE_BYTES`, naming ``name`` or the field that drives the largest part."""
        parts = self.memory_estimate(n_sessions)
        total = sum(parts.values())
        if total <= MAX_STATE_BYTES:
            return
        part = max(parts, key=lambda p: parts[p])
        if name is None:
            name = {"users": "n_users", "catalog": "n_items_max",
                    "step": "n_candidates" if self.n_candidates > self.n_recommenders
                    else "n_recommenders",
                    "encoder": "n_topics" if self.content_dim is None else "content_dim"}[part]
        value = n_sessions if name == "num_envs" else getattr(self, name)
        detail = ", ".join(f"{p} {_fmt_bytes(b)}" for p, b in parts.items() if b)
        raise ConfigError(name, value,
                          f"small enough for the world's arrays to fit in "
                          f"{_fmt_bytes(MAX_STATE_BYTES)} (recsim_env.config.MAX_STATE_BYTES)",
                          tuple(n for n in ("n_users", "n_topics", "n_items_max", "n_candidates",
                                            "n_recommenders", "content_dim") if n != name),
                          hint=f"this config needs about {_fmt_bytes(total)} ({detail})")

    def to_dict(self) -> dict[str, Any]:
        """Plain-data view for logging (``json.dumps``-able)."""
        out = dataclasses.asdict(self)
        if out["topic_quality"] is not None:
            out["topic_quality"] = [float(x) for x in out["topic_quality"]]
        return out


@functools.cache
def _field_adapter(name: str) -> pydantic.TypeAdapter:
    info = EnvConfig.__pydantic_fields__[name]
    tp = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
    return pydantic.TypeAdapter(tp, config=_STRICT)


def check_field(name: str, value: Any) -> Any:
    """Check one field's value alone (its type and range, no cross-field check).

    Returns:
        The value as the config would store it.

    Raises:
        ConfigError: naming the field, the value and what is allowed.
    """
    try:
        return _field_adapter(name).validate_python(_plain(value))
    except pydantic.ValidationError:
        raise ConfigError(name, value, _expected(EnvConfig, name)) from None


# ---------------------------------------------------------------------------- presets
@dataclasses.dataclass(frozen=True)
class Derived:
    """A preset value computed from other fields' final values (after overrides), so that
    ``make_config("long_term", n_topics=3)`` gets 3 topic qualities.

    Attributes:
        needs: the fields it is computed from.
        fn: ``fn(values) -> value``, ``values`` mapping each of ``needs`` to its final value.
        doc: what it computes, for people reading the preset.
    """

    needs: tuple[str, ...]
    fn: Callable[[Mapping[str, Any]], Any]
    doc: str


def _recsim_topic_quality(n_topics: int) -> tuple[float, ...]:
    """RecSim's per-topic quality means: ``linspace(-3, 0, 14) ++ linspace(0, 3, 6)`` for 20
    topics; for other counts the same two ramps over 70% and 30% of the topics."""
    low = round(n_topics * 14 / 20)
    mu = np.concatenate([np.linspace(-3, 0, low), np.linspace(0, 3, n_topics - low)])
    return tuple(float(x) for x in mu)


_RECSIM_MU = _recsim_topic_quality(20)

PRESET_DESCRIPTIONS: dict[str, str] = {
    "default": "Every mechanism on: drifting, satiating, returning users; live catalog with "
               "cold-start arrivals; MNL choice.",
    "recsim_ie": "Google RecSim's interest_evolution, reproduced exactly: 20 one-hot topics, "
                 "10 fresh candidates, slate 2, budget 200, true interest observed.",
    "cold_start": "Fast arrivals and short item lifetimes (most candidates have no history), "
                  "one item at a time to choosy returning users: what a recommender knows of "
                  "a new item's content decides whether it is clicked.",
    "long_term": "Strong satiation and quality effects: a myopic policy loses to one that "
                 "plans ahead.",
}

_PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "recsim_ie": dict(
        n_topics=20,
        # every session brings a fresh user, so the population is one placeholder per slot
        n_users=Derived(("n_recommenders",), lambda v: v["n_recommenders"],
                        "one user per recommender (each session draws a fresh user)"),
        n_recommenders=1,
        n_candidates=10,
        slate_size=2,
        candidate_source="fresh",
        topic_purity=1.0,
        topic_quality=Derived(("n_topics",), lambda v: _recsim_topic_quality(v["n_topics"]),
                              "RecSim's quality ramps over n_topics"),
        provider_skill_std=0.0,
        quality_noise=0.1,
        item_length=4.0,
        item_length_log_std=0.0,
        content_encoder="topic",
        content_noise=0.0,
        exogenous_drift=False,
        endogenous_drift=True,
        interest_step=0.3,
        satiation=False,
        session_budget=200.0,
        no_click_penalty=0.5,
        quality_bonus=0.9 / 3.4,
        patience=None,
        fresh_user_each_session=True,
        return_delay_mean=0.0,
        choice_model="proportional",
        no_click_mass=1.0,
        min_normalizer=-1.0,
        watch_mode="full",
        recommender_reward="watch_time",
        observe_interest=True,
    ),
    "cold_start": dict(
        arrival_rate=6.0,
        item_lifetime=60,
        n_items_initial=300,
        n_items_max=600,
        frac_newest=0.3,
        frac_popular=0.1,
        # One item per step (a short-video feed) to users who skip what does not suit them
        # (no click is worth 0.5 of affinity): a random item is clicked about a quarter of
        # the time, a well-matched one more than twice as often. With a slate of 3 and
        # no_click_utility 0 users clicked 3 slates in 4 whatever was shown, which left content
        # almost nothing to win (results/cold_start). Purer topics make an item's
        # description say what it is about; a returning base of 25 users per recommender lets
        # per-user profiles build up; satiation is off because its boredom punishes exactly
        # the similar-content streaks a content-based recommender makes (see long_term).
        slate_size=1,
        no_click_utility=0.5,
        topic_purity=0.9,
        n_users=100,
        satiation=False,
    ),
    "long_term": dict(
        satiation_decay=0.9,
        satiation_strength=1.5,
        quality_in_choice=0.0,
        topic_quality=Derived(("n_topics",),
                              lambda v: tuple(float(x) for x in np.linspace(-1.5, 1.5,
                                                                            v["n_topics"])),
                              "evenly spaced from -1.5 to 1.5 over n_topics"),
        quality_noise=0.3,
        provider_skill_std=0.3,
        quality_bonus=0.5,
        # sessions end on budget, not patience, so the time that quality gives back pays off
        # (with patience 4 every session ended on patience and planning could not win)
        patience=None,
        retention_strength=3.0,
    ),
}

PRESETS: tuple[str, ...] = tuple(_PRESETS)

_DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(EnvConfig)
                             if f.default is not dataclasses.MISSING}


def make_config(preset: str = "default", **overrides: Any) -> EnvConfig:
    """Build the config of a named preset, with keyword overrides.

    The preset's plain values are taken first, then the overrides; values the preset derives
    from other fields (:class:`Derived`: per-topic qualities from ``n_topics``, ``recsim_ie``'s
    population from ``n_recommenders``) are computed from the final values, unless overridden.
    When an override contradicts a value the preset sets, the error says which preset field
    to pass along with it.

    Args:
        preset: one of :data:`PRESETS`.
        **overrides: any :class:`EnvConfig` field.

    Raises:
        ValueError: unknown preset or field; :class:`ConfigError` (a ``ValueError``) for an
            invalid value, naming the field.
    """
    if preset not in _PRESETS:
        raise ValueError(f"preset must be one of {PRESETS}, got {preset!r}")
    unknown = sorted(set(overrides) - set(EnvConfig.__pydantic_fields__))
    if unknown:
        raise ValueError(f"unknown config field(s) {unknown}; known fields: "
                         f"{sorted(EnvConfig.__pydantic_fields__)}")
    spec = _PRESETS[preset]
    values = {k: v for k, v in spec.items() if not isinstance(v, Derived)} | overrides
    for name, rule in spec.items():
        if isinstance(rule, Derived) and name not in overrides:
            # each input is checked alone first: a bad override is reported as itself, and a
            # huge one never reaches the derivation
            inputs = {n: check_field(n, values.get(n, _DEFAULTS.get(n))) for n in rule.needs}
            values[name] = rule.fn(inputs)
    try:
        return EnvConfig(**values)
    except ConfigError as e:
        from_preset = [f for f in e.fields if f in spec and f not in overrides]
        if not from_preset or not overrides:
            raise
        sets = ", ".join(f"{f}={_short_repr(values[f])}" for f in from_preset)
        raise e.with_hint(f"preset {preset!r} sets {sets}: pass {' and '.join(from_preset)} "
                          f"along with {', '.join(sorted(overrides))}") from None
