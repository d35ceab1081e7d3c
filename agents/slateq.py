"""SlateQ (Ie et al., 2019): slate values decomposed into item-wise long-term values.

**Decomposition**. With ``P(i | s, A)`` the probability that the user clicks item ``i`` of
slate ``A`` and ``P(null | s, A)`` the probability of no click::

    Q(s, A) = sum_{i in A} P(i | s, A) Qbar(s, i) + P(null | s, A) Qbar(s, null)

``Qbar(s, i)`` is the long-term value of the user consuming ``i``; ``Qbar(s, null)`` that of
not clicking (in RecSim a no-click still spends budget, so it is learned too, through a learned
"null item" feature vector fed to the same network). ``Qbar`` is an
:class:`agents.dqn.ItemScorer`, shared over candidates, so it scores unseen items.

**Choice probabilities** come from the *configured* choice model,
:func:`choice_probabilities_torch` (a torch restatement of
:func:`recsim_env.choice.choice_probabilities`, the same numbers), applied to an estimated
utility ``u(s, i)``:

* ``utility="observed"``: ``u(s, i) = interest(s) . content(i)``, the observed interest
  vector dotted with the candidate's content. Exact in RecSim's interest_evolution (preset
  ``recsim_ie``: the true interest is observed, content is the one-hot topic, utility is the
  interest in the topic); it is what RecSim's own SlateQ agent assumes. Needs
  ``observe_interest`` and the ``topic`` content encoder.
* ``utility="learned"``: a click-model head (another :class:`ItemScorer`) fitted by maximum
  likelihood of the observed choice (clicked position or no click) under the configured
  choice model, from the same replayed batches. For ``proportional`` choice its output ``z``
  becomes ``u = min_normalizer + softplus(z)`` so every shown item keeps a positive weight
  (and a finite log-likelihood).
* ``utility="auto"`` (default): ``observed`` when possible, else ``learned``.

**Slate optimisation**: exact, by enumerating every slate (unordered subsets, or ordered ones
for the position-dependent ``cascade`` model) when there are at most
``max_enumerated_slates`` of them (10 candidates, slate 2: 45 subsets); otherwise greedy
(add, one position at a time, the candidate that maximises the value of the partial slate).

**Learning** (Q-learning style, as in the paper's SlateQ with optimal next slate): a replayed
transition trains the value of what the user actually did,

    Qbar(s, clicked item)  or  Qbar(s, null)   ->   r + gamma * (1 - terminated) * Q(s', A*)

where ``A* = argmax_A' Q(s', A')`` is found with the online networks and valued with the target
``Qbar`` (double-Q), with the same choice probabilities. Terminated transitions do not
bootstrap; truncated ones do. Huber loss, Adam, gradient clipping, a target network updated by
Polyak averaging every ``target_update_interval`` gradient steps, epsilon-random slates while
exploring, as in :class:`agents.dqn.DQN`.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import torch
from torch import nn

from agents.dqn import ItemScorer
from agents.qbase import ReplayQLearner
from recsim_env.config import EnvConfig

__all__ = ["SlateQ", "choice_probabilities_torch"]

UTILITIES = ("auto", "observed", "learned")


def choice_probabilities_torch(utility: torch.Tensor, shown: torch.Tensor | None,
                               cfg: EnvConfig) -> torch.Tensor:
    """Torch version of :func:`recsim_env.choice.choice_probabilities`, any leading axes.

    Args:
        utility: (..., k) utilities of the slate items.
        shown: (..., k) bool, False for empty positions; ``None`` means all shown.
        cfg: config (``choice_model`` and its parameters).

    Returns:
        (..., k + 1) probabilities, last = no click; differentiable in ``utility``.
    """
    if shown is None:
        shown = torch.ones_like(utility, dtype=torch.bool)
    lead = utility.shape[:-1]
    if cfg.choice_model == "mnl":
        logits = torch.where(shown, utility / cfg.choice_temperature,
                             torch.full_like(utility, -math.inf))
        no_click = torch.full(lead + (1,), cfg.no_click_utility / cfg.choice_temperature,
                              dtype=utility.dtype)
        return torch.softmax(torch.cat([logits, no_click], dim=-1), dim=-1)
    if cfg.choice_model == "proportional":
        w = torch.where(shown, torch.clamp(utility - cfg.min_normalizer, min=0.0),
                        torch.zeros_like(utility))
        no_click = torch.full(lead + (1,), cfg.no_click_mass - cfg.min_normalizer,
                              dtype=utility.dtype)
        z = torch.cat([w, no_click], dim=-1)
        return z / z.sum(dim=-1, keepdim=True)
    # cascade
    k = utility.shape[-1]
    attract = torch.sigmoid((utility - cfg.no_click_utility) / cfg.choice_temperature)
    examine = cfg.position_bias ** torch.arange(k, dtype=utility.dtype)
    p_stop = torch.where(shown, attract * examine, torch.zeros_like(utility))
    survive = torch.cumprod(1.0 - p_stop, dim=-1)
    before = torch.cat([torch.ones(lead + (1,), dtype=utility.dtype), survive[..., :-1]], dim=-1)
    return torch.cat([before * p_stop, survive[..., -1:]], dim=-1)


class SlateQ(ReplayQLearner):
    """SlateQ recommender (see the module docstring).

    The replay, epsilon schedule, epsilon-random acting, update loop, gradient step, target
    updates and state are :class:`agents.qbase.ReplayQLearner`'s; the slate decomposition,
    slate optimisation and the losses are this class's.

    Args:
        config: the world's config (layout, slate size, choice model).
        seed: seed of the learner's own numpy and torch generators.
        utility: ``"auto"``, ``"observed"`` or ``"learned"`` (how ``P(i | s, A)`` is estimated).
        max_enumerated_slates: enumerate slates exactly up to this many, else greedy.
        **hparams: :class:`agents.qbase.ReplayHParams`, as for :class:`agents.dqn.DQN`.
        click_loss_weight: weight of the click model's negative log-likelihood in the loss
            (``utility="learned"`` only).
    """

    kind = "SlateQ"

    def __init__(self, config: EnvConfig, *, seed: int = 0, utility: str = "auto",
                 max_enumerated_slates: int = 5_000, click_loss_weight: float = 1.0,
                 **hparams: Any) -> None:
        super().__init__(config, seed=seed, **hparams)
        if utility not in UTILITIES:
            raise ValueError(f"utility must be one of {UTILITIES}, got {utility!r}")
        observable = config.observe_interest and config.content_encoder == "topic"
        if utility == "observed" and not observable:
            raise ValueError("utility='observed' needs observe_interest=True and "
                             f"content_encoder='topic', got {config.observe_interest!r} and "
                             f"{config.content_encoder!r}")
        self.utility = ("observed" if observable else "learned") if utility == "auto" else utility
        self.config = config
        self.click_loss_weight = float(click_loss_weight)
        self._set_networks(_SlateQNet(*self._net_dims(), tuple(self.hp.hidden),
                                      self.hp.cross_dim, self.utility == "learned",
                                      self.torch_rng))
        # every slate to enumerate (S, k), or None for greedy
        make = itertools.permutations if config.choice_model == "cascade" else \
            itertools.combinations
        n_slates = (math.perm if config.choice_model == "cascade" else math.comb)(
            self.n_candidates, self.slate_size)
        self.slates = (torch.tensor(list(make(range(self.n_candidates), self.slate_size)),
                                    dtype=torch.int64)
                       if n_slates <= max_enumerated_slates else None)

    # ------------------------------------------------------------------ values
    def _utility(self, net: _SlateQNet, user: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
        """Estimated utility of every candidate: (n, C)."""
        if self.utility == "observed":
            T = self.layout.n_topics
            interest = user[:, T + 3: 2 * T + 3]
            return torch.einsum("nt,nct->nc", interest, cand[:, :, :T])
        z = net.click(user, cand)
        if self.config.choice_model == "proportional":
            return self.config.min_normalizer + nn.functional.softplus(z)
        return z

    def _slate_values(self, qbar: torch.Tensor, q_null: torch.Tensor, util: torch.Tensor,
                      slates: torch.Tensor) -> torch.Tensor:
        """``Q(s, A)`` for per-row candidate slates.

        Args:
            qbar: (n, C) item values; q_null: (n,) no-click value; util: (n, C) utilities.
            slates: (n, S, j) candidate indices (distinct within a slate).

        Returns:
            (n, S).
        """
        n, S, j = slates.shape
        flat = slates.reshape(n, S * j)
        g_q = torch.gather(qbar, 1, flat).reshape(n, S, j)
        g_u = torch.gather(util, 1, flat).reshape(n, S, j)
        p = choice_probabilities_torch(g_u, None, self.config)
        return (p[..., :j] * g_q).sum(-1) + p[..., j] * q_null[:, None]

    def _best_slates(self, qbar: torch.Tensor, q_null: torch.Tensor, util: torch.Tensor
                     ) -> torch.Tensor:
        """argmax_A Q(s, A): (n, slate_size), exact or greedy."""
        n = qbar.shape[0]
        if self.slates is not None:
            cand = self.slates.unsqueeze(0).expand(n, -1, -1)
            best = self._slate_values(qbar, q_null, util, cand).argmax(dim=1)
            return self.slates[best]
        chosen = torch.zeros(n, 0, dtype=torch.int64)
        all_c = torch.arange(self.n_candidates)
        for _ in range(self.slate_size):
            trial = torch.cat([chosen.unsqueeze(1).expand(n, self.n_candidates, -1),
                               all_c.view(1, -1, 1).expand(n, -1, 1)], dim=2)
            v = self._slate_values(qbar, q_null, util, trial)
            taken = torch.zeros(n, self.n_candidates, dtype=torch.bool)
            taken.scatter_(1, chosen, True)
            v = v.masked_fill(taken, -math.inf)
            chosen = torch.cat([chosen, v.argmax(dim=1, keepdim=True)], dim=1)
        return chosen

    def _online_values(self, user: torch.Tensor, cand: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Online ``Qbar`` of every candidate (n, C), of no click (n,), and utilities (n, C)."""
        qbar, q_null = self.q_net(user, cand)
        return qbar, q_null, self._utility(self.q_net, user, cand)

    @torch.no_grad()
    def slate_values(self, obs: np.ndarray, slates: np.ndarray) -> np.ndarray:
        """Online ``Q(s, A)`` of given slates: (n, obs_dim), (n, S, k) -> (n, S)."""
        qbar, q_null, util = self._online_values(*self._split(obs))
        return self._slate_values(qbar, q_null, util, torch.as_tensor(slates)).numpy()

    # ------------------------------------------------------------------ learner API
    @torch.no_grad()
    def _greedy_slates(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        """The slate maximising ``Q(s, A)`` (what :meth:`act` shows when not exploring)."""
        qbar, q_null, util = self._online_values(*self._split(obs))
        return self._best_slates(qbar, q_null, util).numpy().copy()

    def _train_step(self, b: dict[str, np.ndarray]) -> dict[str, float]:
        n = b["obs"].shape[0]
        rows = torch.arange(n)
        user, cand = self._split(b["obs"])
        action = torch.from_numpy(b["action"])
        clicked = torch.from_numpy(b["clicked"])
        did_click = clicked >= 0
        item = action[rows, clicked.clamp(min=0)]
        qbar, q_null = self.q_net(user, cand[rows, item][:, None, :])
        pred = torch.where(did_click, qbar[:, 0], q_null)
        with torch.no_grad():
            user_n, cand_n = self._split(b["next_obs"])
            qbar_n, q_null_n, util_n = self._online_values(user_n, cand_n)
            best = self._best_slates(qbar_n, q_null_n, util_n)  # (n, k)
            # the target network values only the chosen slate's items
            tq, tq_null = self.q_target(user_n, cand_n[rows[:, None], best])
            p = choice_probabilities_torch(torch.gather(util_n, 1, best), None, self.config)
            k = self.slate_size
            v_next = (p[:, :k] * tq).sum(-1) + p[:, k] * tq_null
            target = self._td_target(b, v_next)
        td_loss = nn.functional.smooth_l1_loss(pred, target)
        loss = td_loss
        out: dict[str, float] = {}
        if self.utility == "learned":
            util = self._utility(self.q_net, user, cand)
            p = choice_probabilities_torch(torch.gather(util, 1, action), None, self.config)
            outcome = torch.where(did_click, clicked, torch.full_like(clicked, self.slate_size))
            nll = -torch.log(p[rows, outcome].clamp(min=1e-8)).mean()
            loss = loss + self.click_loss_weight * nll
            out["train/click_nll"] = float(nll.detach())
        self._gradient_step(loss)
        out["train/td_loss"] = float(td_loss.detach())
        out["train/loss"] = float(loss.detach())
        out["train/q_mean"] = float(pred.detach().mean())
        return out

    def _model_state(self) -> dict[str, Any]:
        """The utility mode, then networks, optimizer and replay contents."""
        return {"utility": self.utility, **super()._model_state()}

    def _load_model_state(self, state: dict[str, Any]) -> None:
        if state["utility"] != self.utility:
            raise ValueError(f"state was saved with utility={state['utility']!r}, this "
                             f"learner uses {self.utility!r}")
        super()._load_model_state(state)


class _SlateQNet(nn.Module):
    """``Qbar`` scorer, the learned null-item features, and (optionally) the click model."""

    def __init__(self, user_dim: int, item_dim: int, hidden: tuple[int, ...], cross_dim: int,
                 learned_click: bool, generator: torch.Generator) -> None:
        super().__init__()
        self.qbar = ItemScorer(user_dim, item_dim, hidden, cross_dim, generator)
        self.null_item = nn.Parameter(torch.zeros(item_dim))
        self.click_model = (ItemScorer(user_dim, item_dim, hidden, cross_dim, generator)
                            if learned_click else None)

    def forward(self, user: torch.Tensor, items: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``Qbar`` of the items (n, m) and of the null item (n,)."""
        null = self.null_item.expand(user.shape[0], 1, -1)
        q = self.qbar(user, torch.cat([items, null], dim=1))
        return q[:, :-1], q[:, -1]

    def click(self, user: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Raw click-model output per item: (n, m)."""
        assert self.click_model is not None
        return self.click_model(user, items)
