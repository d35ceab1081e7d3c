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

import copy
import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from agents.base import ActContext, Transition
from agents.dqn import (
    ItemScorer,
    check_q_hyperparameters,
    clone_state_dict,
    polyak_update,
)
from agents.replay import (
    check_obs,
    ReplayBuffer,
    linear_schedule,
    obs_layout,
    random_slates,
    rng_state,
    set_rng_state,
)
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


class SlateQ:
    """SlateQ recommender (see the module docstring).

    Args:
        config: the world's config (layout, slate size, choice model).
        seed: seed of the learner's own numpy and torch generators.
        utility: ``"auto"``, ``"observed"`` or ``"learned"`` (how ``P(i | s, A)`` is estimated).
        max_enumerated_slates: enumerate slates exactly up to this many, else greedy.
        gamma, lr, batch_size, buffer_size, learning_starts, gradient_steps,
        target_update_interval, tau, exploration_initial_eps, exploration_final_eps,
        exploration_steps, max_grad_norm, hidden, cross_dim, reward_scale: as in
            :class:`agents.dqn.DQN`.
        click_loss_weight: weight of the click model's negative log-likelihood in the loss
            (``utility="learned"`` only).
    """

    privileged = False

    def __init__(
        self,
        config: EnvConfig,
        *,
        seed: int = 0,
        utility: str = "auto",
        max_enumerated_slates: int = 5_000,
        gamma: float = 0.99,
        lr: float = 1e-3,
        batch_size: int = 256,
        buffer_size: int = 50_000,
        learning_starts: int = 1_000,
        gradient_steps: int = 1,
        target_update_interval: int = 1,
        tau: float = 0.01,
        exploration_initial_eps: float = 1.0,
        exploration_final_eps: float = 0.05,
        exploration_steps: int = 50_000,
        max_grad_norm: float = 10.0,
        hidden: Sequence[int] = (64, 64),
        cross_dim: int = 32,
        reward_scale: float = 1.0,
        click_loss_weight: float = 1.0,
    ) -> None:
        check_q_hyperparameters(gamma, lr, batch_size, gradient_steps, target_update_interval,
                                tau)
        if utility not in UTILITIES:
            raise ValueError(f"utility must be one of {UTILITIES}, got {utility!r}")
        observable = config.observe_interest and config.content_encoder == "topic"
        if utility == "observed" and not observable:
            raise ValueError("utility='observed' needs observe_interest=True and "
                             f"content_encoder='topic', got {config.observe_interest!r} and "
                             f"{config.content_encoder!r}")
        self.utility = ("observed" if observable else "learned") if utility == "auto" else utility
        self.config = config
        self.layout = obs_layout(config)
        self.slate_size = config.slate_size
        self.n_candidates = config.n_candidates
        self.gamma, self.lr, self.tau = float(gamma), float(lr), float(tau)
        self.batch_size, self.learning_starts = int(batch_size), int(learning_starts)
        self.gradient_steps = int(gradient_steps)
        self.target_update_interval = int(target_update_interval)
        self.eps_start, self.eps_end = float(exploration_initial_eps), float(exploration_final_eps)
        self.exploration_steps = int(exploration_steps)
        self.max_grad_norm = float(max_grad_norm)
        self.reward_scale = float(reward_scale)
        self.click_loss_weight = float(click_loss_weight)
        self.rng = np.random.default_rng(seed)
        self.torch_rng = torch.Generator().manual_seed(int(seed))
        lay = self.layout
        self.q_net = _SlateQNet(lay.user_dim, lay.item_dim, tuple(hidden), cross_dim,
                                self.utility == "learned", self.torch_rng)
        self.q_target = copy.deepcopy(self.q_net).requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.q_net.parameters(), lr=self.lr, fused=True)
        self.replay = ReplayBuffer(buffer_size, lay.size, self.slate_size)
        self.num_timesteps = 0
        self.n_updates = 0
        # every slate to enumerate (S, k), or None for greedy
        make = itertools.permutations if config.choice_model == "cascade" else \
            itertools.combinations
        n_slates = (math.perm if config.choice_model == "cascade" else math.comb)(
            self.n_candidates, self.slate_size)
        self.slates = (torch.tensor(list(make(range(self.n_candidates), self.slate_size)),
                                    dtype=torch.int64)
                       if n_slates <= max_enumerated_slates else None)

    @property
    def exploration_rate(self) -> float:
        """Current epsilon."""
        return linear_schedule(self.eps_start, self.eps_end, self.exploration_steps,
                               self.num_timesteps)

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

    def _split(self, obs: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return self.layout.split(torch.as_tensor(obs, dtype=torch.float32))

    @torch.no_grad()
    def slate_values(self, obs: np.ndarray, slates: np.ndarray) -> np.ndarray:
        """Online ``Q(s, A)`` of given slates: (n, obs_dim), (n, S, k) -> (n, S)."""
        user, cand = self._split(obs)
        qbar, q_null = self.q_net(user, cand)
        util = self._utility(self.q_net, user, cand)
        return self._slate_values(qbar, q_null, util, torch.as_tensor(slates)).numpy()

    # ------------------------------------------------------------------ learner API
    def act(self, obs: np.ndarray, context: ActContext | None = None, *,
            explore: bool = True) -> np.ndarray:
        """The slate maximising ``Q(s, A)``; epsilon-random slates when exploring.

        Returns:
            (n, slate_size) int64.
        """
        check_obs(obs, self.layout)
        with torch.no_grad():
            user, cand = self._split(obs)
            qbar, q_null = self.q_net(user, cand)
            util = self._utility(self.q_net, user, cand)
            slates = self._best_slates(qbar, q_null, util).numpy().copy()
        if explore:
            rand = self.rng.random(obs.shape[0]) < self.exploration_rate
            slates[rand] = random_slates(self.rng, int(rand.sum()), self.n_candidates,
                                         self.slate_size)
        return slates

    def update(self, batch: Transition) -> dict[str, float]:
        """Store the batch, then run ``gradient_steps`` gradient steps once warm."""
        self.replay.add(batch.obs, batch.action, batch.reward, batch.next_obs,
                        batch.terminated, batch.clicked)
        self.num_timesteps += batch.obs.shape[0]
        out = {"rollout/exploration_rate": self.exploration_rate}
        if len(self.replay) < max(self.learning_starts, 1):
            return out
        stats = [self._train_step(self.replay.sample(self.batch_size, self.rng))
                 for _ in range(self.gradient_steps)]
        out.update({key: float(np.mean([s[key] for s in stats])) for key in stats[0]})
        out["train/n_updates"] = float(self.n_updates)
        return out

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
            qbar_n, q_null_n = self.q_net(user_n, cand_n)
            util_n = self._utility(self.q_net, user_n, cand_n)
            best = self._best_slates(qbar_n, q_null_n, util_n)  # (n, k)
            # the target network values only the chosen slate's items
            tq, tq_null = self.q_target(user_n, cand_n[rows[:, None], best])
            p = choice_probabilities_torch(torch.gather(util_n, 1, best), None, self.config)
            k = self.slate_size
            v_next = (p[:, :k] * tq).sum(-1) + p[:, k] * tq_null
            not_done = 1.0 - torch.from_numpy(b["terminated"].astype(np.float32))
            reward = torch.from_numpy(b["reward"]) * self.reward_scale
            target = reward + self.gamma * not_done * v_next
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
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.q_net.parameters(), self.max_grad_norm)
        self.optimizer.step()
        self.n_updates += 1
        if self.n_updates % self.target_update_interval == 0:
            polyak_update(self.q_target, self.q_net, self.tau)
        out["train/td_loss"] = float(td_loss.detach())
        out["train/loss"] = float(loss.detach())
        out["train/q_mean"] = float(pred.detach().mean())
        return out

    def state_dict(self) -> dict[str, Any]:
        """Networks, optimizer, replay contents, counters and generator states."""
        return {
            "kind": "SlateQ",
            "utility": self.utility,
            "q_net": clone_state_dict(self.q_net.state_dict()),
            "q_target": clone_state_dict(self.q_target.state_dict()),
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "replay": self.replay.state_dict(),
            "num_timesteps": self.num_timesteps,
            "n_updates": self.n_updates,
            "rng": rng_state(self.rng),
            "torch_rng": self.torch_rng.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` (same constructor arguments)."""
        if state["utility"] != self.utility:
            raise ValueError(f"state was saved with utility={state['utility']!r}, this "
                             f"learner uses {self.utility!r}")
        self.q_net.load_state_dict(state["q_net"])
        self.q_target.load_state_dict(state["q_target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.replay.load_state_dict(state["replay"])
        self.num_timesteps = int(state["num_timesteps"])
        self.n_updates = int(state["n_updates"])
        set_rng_state(self.rng, state["rng"])
        self.torch_rng.set_state(state["torch_rng"])


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
