"""Stable-Baselines3 policies that score candidates, for slates.

A recommender's observation is ``[user features | candidate 0 | ... | candidate C-1]`` and the
candidates change every step, so an ``MlpPolicy`` over the flat vector has to learn what
"candidate 3" means anew in every state. These policies instead score every candidate with one
network shared by all of them, ``score_i = f(user, candidate_i)`` (:class:`agents.dqn.ItemScorer`:
a first layer over ``[u, c, (P u) * (R c)]``, then an MLP). The scores are permutation
equivariant: shuffling the candidates shuffles the scores, and an item the policy has never seen
is scored from its features (content, age, counters) alone.

* :class:`CandidateScoringPolicy` (PPO, A2C): the slate is drawn from the scores **without
  repeats, one position after the other** (Plackett-Luce): position ``j`` picks among the
  candidates not yet shown with probabilities ``softmax(scores)``. Drawing it is Gumbel top-k;
  its log-probability is ``sum_j score_{i_j} - logsumexp(scores of those left)``; the
  deterministic slate is the top ``k`` scores. It acts in the world's own slate space
  ``MultiDiscrete([C] * k)`` (and never repeats an item), in the no-repeat code space of
  :func:`recsim_env.slates.no_repeat_space`, or in ``Discrete(C)`` for slates of one. The value
  function is an MLP over the whole observation, as in ``MlpPolicy``.
* :class:`CandidateQPolicy` (DQN, ``Discrete(C)``): the Q-network's output for candidate ``i`` is
  ``f(user, candidate_i)``; :class:`agents.sb3.TopKSB3DQN` shows the top ``k`` of them.

Both read the observation layout from the space (``space.layout``: every face's recommender
space is :meth:`recsim_env.ObsLayout.space`) or from ``policy_kwargs={"layout": ...}``. On any other space
(provider and user agents) they are SB3's plain MLP policies, so one name serves every role::

    from stable_baselines3 import PPO
    from agents.sb3_policies import CandidateScoringPolicy
    from recsim_env.vector import RecommenderVecEnv

    model = PPO(CandidateScoringPolicy, RecommenderVecEnv(64, preset="recsim_ie"))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from gymnasium import spaces
from stable_baselines3.common.distributions import CategoricalDistribution, Distribution
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.dqn.policies import DQNPolicy
from torch import nn

from agents.dqn import ItemScorer
from recsim_env.world import ObsLayout

__all__ = ["CandidateQPolicy", "CandidateScoringPolicy", "SlateDistribution",
           "candidate_layout", "decode_codes", "encode_codes"]

# How the action space names a slate: one item, k positions, or no-repeat codes.
ENCODINGS = ("item", "positions", "no_repeat")


# what a layout must have (recsim_env.ObsLayout, or agents.memory.NetLayout for observations
# augmented with a learner's memory)
_LAYOUT_ATTRS = ("user_dim", "item_dim", "n_candidates", "size", "split")


def _is_layout(layout: Any) -> bool:
    return layout is not None and all(hasattr(layout, a) for a in _LAYOUT_ATTRS)


def candidate_layout(observation_space: spaces.Space, action_space: spaces.Space,
                     layout: ObsLayout | None = None) -> tuple[ObsLayout, str] | None:
    """``(layout, encoding)`` when the spaces are a recommender's (a layout from the
    observation space or ``layout``, and a slate action space over its candidates); ``None``
    otherwise (then the policies are plain MLPs). ``ValueError`` when a layout is given but
    the spaces do not fit it."""
    layout = layout if layout is not None else getattr(observation_space, "layout", None)
    if layout is None:
        return None
    if not _is_layout(layout):
        raise ValueError("layout must be a recsim_env.ObsLayout or agents.memory.NetLayout "
                         f"(with {', '.join(_LAYOUT_ATTRS)}), got {type(layout).__name__}")
    if getattr(observation_space, "shape", None) != (layout.size,):
        raise ValueError(f"observation space {observation_space} does not fit the layout "
                         f"({layout.size} features: user {layout.user_dim} + "
                         f"{layout.n_candidates} x {layout.item_dim})")
    c = layout.n_candidates
    if isinstance(action_space, spaces.Discrete) and action_space.n == c:
        return layout, "item"
    if isinstance(action_space, spaces.MultiDiscrete) and action_space.nvec.ndim == 1:
        nvec = [int(v) for v in action_space.nvec]
        k = len(nvec)
        if 1 <= k <= c and nvec == [c] * k:
            return layout, "positions"
        if 1 < k <= c and nvec == list(range(c, c - k, -1)):
            return layout, "no_repeat"
    raise ValueError(f"action space {action_space} is not a slate over the layout's {c} "
                     f"candidates: expected Discrete({c}), MultiDiscrete([{c}] * k) or the "
                     f"no-repeat MultiDiscrete([{c}, {c - 1}, ...])")


def decode_codes(codes: torch.Tensor, n_candidates: int) -> torch.Tensor:
    """Torch twin of :func:`recsim_env.slates.decode_no_repeat`: (n, k) codes -> slates."""
    n, k = codes.shape
    free = torch.ones((n, n_candidates), dtype=torch.bool, device=codes.device)
    rows = torch.arange(n, device=codes.device)
    out = torch.empty((n, k), dtype=torch.long, device=codes.device)
    for j in range(k):  # slate positions; every row at once
        rank = torch.cumsum(free.long(), dim=1)
        out[:, j] = torch.argmax((free & (rank == codes[:, j:j + 1] + 1)).long(), dim=1)
        free[rows, out[:, j]] = False
    return out


def encode_codes(slates: torch.Tensor, n_candidates: int) -> torch.Tensor:
    """Torch twin of :func:`recsim_env.slates.encode_no_repeat`: (n, k) slates -> codes."""
    n, k = slates.shape
    free = torch.ones((n, n_candidates), dtype=torch.bool, device=slates.device)
    rows = torch.arange(n, device=slates.device)
    out = torch.empty((n, k), dtype=torch.long, device=slates.device)
    for j in range(k):
        out[:, j] = torch.cumsum(free.long(), dim=1)[rows, slates[:, j]] - 1
        free[rows, slates[:, j]] = False
    return out


class SlateDistribution(Distribution):
    """Plackett-Luce over candidate scores: slates of ``slate_size`` distinct candidates drawn
    one position after the other with probabilities ``softmax(scores)`` over those left.

    Actions are in the policy's action space (``encoding``: ``item`` (n,), ``positions``
    (n, k) candidate indices, ``no_repeat`` (n, k) codes). The entropy is the chain-rule sum of
    the positions' conditional entropies along the slate last passed to :meth:`log_prob` (the
    exact entropy for slates of one).
    """

    def __init__(self, n_candidates: int, slate_size: int, encoding: str) -> None:
        super().__init__()
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
        self.n_candidates, self.slate_size, self.encoding = n_candidates, slate_size, encoding
        self.scores: torch.Tensor | None = None
        self._entropy: torch.Tensor | None = None

    def proba_distribution_net(self, *args: Any, **kwargs: Any) -> nn.Module:
        """Not used: the scores come from the policy's candidate scorer."""
        raise NotImplementedError("SlateDistribution takes its scores from a candidate scorer")

    def proba_distribution(self, scores: torch.Tensor) -> SlateDistribution:  # type: ignore[override]
        """Set the (n, C) candidate scores."""
        self.scores, self._entropy = scores, None
        return self

    def _slates(self, actions: torch.Tensor) -> torch.Tensor:
        actions = actions.long().reshape(actions.shape[0], -1)
        if self.encoding == "no_repeat":
            return decode_codes(actions, self.n_candidates)
        return actions

    def _actions(self, slates: torch.Tensor) -> torch.Tensor:
        if self.encoding == "item":
            return slates[:, 0]
        if self.encoding == "no_repeat":
            return encode_codes(slates, self.n_candidates)
        return slates

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        """(n,) log-probability of each row's slate."""
        slates = self._slates(actions)
        scores = self.scores
        taken = torch.zeros_like(scores, dtype=torch.bool)
        log_p = torch.zeros(scores.shape[0], dtype=scores.dtype, device=scores.device)
        entropy = torch.zeros_like(log_p)
        for j in range(slates.shape[1]):  # slate positions; every row at once
            logits = torch.log_softmax(scores.masked_fill(taken, float("-inf")), dim=1)
            log_p = log_p + logits.gather(1, slates[:, j:j + 1]).squeeze(1)
            entropy = entropy - (logits.exp() * logits.masked_fill(taken, 0.0)).sum(dim=1)
            taken = taken.scatter(1, slates[:, j:j + 1], True)
        self._entropy = entropy
        return log_p

    def entropy(self) -> torch.Tensor:
        """(n,) chain-rule entropy along the last slate scored (the mode if none was)."""
        if self._entropy is None:
            self.log_prob(self.mode())
        return self._entropy

    def sample(self) -> torch.Tensor:
        """Gumbel top-k: exactly Plackett-Luce sampling without replacement."""
        u = torch.rand_like(self.scores).clamp_(min=torch.finfo(self.scores.dtype).tiny)
        gumbel = -torch.log(-torch.log(u))
        return self._actions(torch.topk(self.scores + gumbel, self.slate_size, dim=1).indices)

    def mode(self) -> torch.Tensor:
        """The ``slate_size`` best-scored candidates, best first."""
        return self._actions(torch.topk(self.scores, self.slate_size, dim=1).indices)

    def actions_from_params(self, scores: torch.Tensor, deterministic: bool = False
                            ) -> torch.Tensor:  # type: ignore[override]
        """Slates drawn (or the mode) from ``scores``."""
        return self.proba_distribution(scores).get_actions(deterministic=deterministic)

    def log_prob_from_params(self, scores: torch.Tensor  # type: ignore[override]
                             ) -> tuple[torch.Tensor, torch.Tensor]:
        """A slate drawn from ``scores`` and its log-probability."""
        actions = self.actions_from_params(scores)
        return actions, self.log_prob(actions)


def _scorer(layout: ObsLayout, hidden: Sequence[int], cross_dim: int) -> ItemScorer:
    """An :class:`ItemScorer` for ``layout``, initialised from torch's global generator (which
    SB3 seeds from the model's ``seed``)."""
    generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))))
    return ItemScorer(layout.user_dim, layout.item_dim, tuple(hidden), cross_dim, generator)


def _score(scorer: ItemScorer, layout: ObsLayout, obs: torch.Tensor) -> torch.Tensor:
    """(n, size) observations -> (n, C) candidate scores."""
    user, cand = layout.split(obs.float())
    return scorer(user, cand)


class _ScorerOptions:
    """The candidate scorer's options, shared by both policies: set before SB3's constructor
    (which builds the networks) and saved with the model."""

    def _scorer_options(self, slate: tuple[ObsLayout, str] | None, layout: ObsLayout | None,
                        scorer_hidden: Sequence[int], cross_dim: int) -> None:
        # plain attributes, set before nn.Module.__init__ runs
        object.__setattr__(self, "_slate", slate)
        object.__setattr__(self, "_layout_kwarg", layout)
        object.__setattr__(self, "_scorer_args", (tuple(scorer_hidden), int(cross_dim)))

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()  # type: ignore[misc]
        data.update(layout=self._layout_kwarg, scorer_hidden=self._scorer_args[0],
                    cross_dim=self._scorer_args[1])
        return data


class CandidateScoringPolicy(_ScorerOptions, ActorCriticPolicy):
    """Actor-critic policy for PPO and A2C whose actor scores candidates (module docstring).

    Args:
        observation_space, action_space, lr_schedule: as SB3's ``ActorCriticPolicy``.
        layout: the observation layout when the space does not carry it (default: read from a
            recommender space, ``space.layout``).
        scorer_hidden: hidden layer sizes of the candidate scorer.
        cross_dim: rank of its user x item cross term (0: none).
        **kwargs: SB3's ``ActorCriticPolicy`` options (``net_arch`` shapes the value network).
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space,
                 lr_schedule: Any, *, layout: ObsLayout | None = None,
                 scorer_hidden: Sequence[int] = (64, 64), cross_dim: int = 32,
                 **kwargs: Any) -> None:
        # set before ActorCriticPolicy.__init__, which calls _build
        self._scorer_options(candidate_layout(observation_space, action_space, layout),
                             layout, scorer_hidden, cross_dim)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    @property
    def scores_candidates(self) -> bool:
        """Whether the actor scores candidates (else it is SB3's MLP actor)."""
        return self._slate is not None

    def _build(self, lr_schedule: Any) -> None:
        if self._slate is None:
            super()._build(lr_schedule)
            return
        layout, encoding = self._slate
        k = 1 if encoding == "item" else int(len(self.action_space.nvec))
        self.action_dist = SlateDistribution(layout.n_candidates, k, encoding)
        # SB3's _build makes an action head for the distribution it knows; build the critic
        # with a stand-in categorical, then drop its head.
        self.action_dist, slate_dist = CategoricalDistribution(1), self.action_dist
        super()._build(lr_schedule)
        self.action_dist = slate_dist
        self.action_net = nn.Identity()
        self.scorer = _scorer(layout, *self._scorer_args)
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1),
                                              **self.optimizer_kwargs)

    def _distribution(self, obs: torch.Tensor) -> SlateDistribution:
        return self.action_dist.proba_distribution(_score(self.scorer, self._slate[0], obs))

    def forward(self, obs: torch.Tensor, deterministic: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self._slate is None:
            return super().forward(obs, deterministic)
        distribution = self._distribution(obs)
        actions = distribution.get_actions(deterministic=deterministic)
        log_prob = distribution.log_prob(actions)
        return actions.reshape((-1, *self.action_space.shape)), self.predict_values(obs), log_prob

    def evaluate_actions(self, obs: torch.Tensor, actions: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        if self._slate is None:
            return super().evaluate_actions(obs, actions)
        distribution = self._distribution(obs)
        log_prob = distribution.log_prob(actions)
        return self.predict_values(obs), log_prob, distribution.entropy()

    def get_distribution(self, obs: torch.Tensor) -> Distribution:
        if self._slate is None:
            return super().get_distribution(obs)
        return self._distribution(obs)

    def _predict(self, observation: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        return self.get_distribution(observation).get_actions(deterministic=deterministic)


class CandidateQNetwork(BasePolicy):
    """SB3 Q-network whose value of candidate ``i`` is ``f(user, candidate_i)``."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Discrete,
                 features_extractor: nn.Module, features_dim: int, *, layout: ObsLayout,
                 scorer_hidden: Sequence[int], cross_dim: int, normalize_images: bool = True,
                 **_: Any) -> None:
        super().__init__(observation_space, action_space, features_extractor=features_extractor,
                         normalize_images=normalize_images)
        self.layout = layout
        self.scorer = _scorer(layout, scorer_hidden, cross_dim)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """(n, C) Q-values."""
        return _score(self.scorer, self.layout, obs)

    def _predict(self, observation: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        return self(observation).argmax(dim=1).reshape(-1)


class CandidateQPolicy(_ScorerOptions, DQNPolicy):
    """DQN policy over ``Discrete(C)`` whose Q-network scores candidates (module docstring);
    SB3's MLP Q-network on any other space. Options as :class:`CandidateScoringPolicy`."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space,
                 lr_schedule: Any, *, layout: ObsLayout | None = None,
                 scorer_hidden: Sequence[int] = (64, 64), cross_dim: int = 32,
                 **kwargs: Any) -> None:
        slate = candidate_layout(observation_space, action_space, layout)
        if slate is not None and slate[1] != "item":
            raise ValueError(f"DQN picks one candidate: action space must be "
                             f"Discrete({slate[0].n_candidates}), got {action_space}")
        self._scorer_options(slate, layout, scorer_hidden, cross_dim)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def make_q_net(self) -> BasePolicy:
        if self._slate is None:
            return super().make_q_net()
        net_args = self._update_features_extractor(self.net_args, features_extractor=None)
        hidden, cross = self._scorer_args
        return CandidateQNetwork(**net_args, layout=self._slate[0], scorer_hidden=hidden,
                                 cross_dim=cross).to(self.device)


def default_policy(algo: str, observation_space: spaces.Space) -> Any:
    """The policy ``make_model`` uses: candidate scoring on a recommender's space, else
    ``MlpPolicy``."""
    if not _is_layout(getattr(observation_space, "layout", None)):
        return "MlpPolicy"
    return CandidateQPolicy if algo == "dqn" else CandidateScoringPolicy
