"""Deep Q-learning with an item-wise scoring network.

**Network** (:class:`ItemScorer`): ``Q(s, i) = f(user features of s, features of candidate
i)``, one network shared by every candidate, so it scores items it has never seen (cold start)
from their content alone. Its first layer is a linear layer over ``[u, c, (P u) * (R c)]``: the
user part, the candidate part and a low-rank factorised cross term (a learned "interest in
this item" that a plain MLP over ``[u, c]`` finds slowly). The user part of that layer is
computed once per row and broadcast over the candidates, which makes scoring ``C`` candidates
cost little more than scoring one.

**Learner** (:class:`DQN`): double DQN (the online network picks the next candidate, the target
network scores it), a target network updated every ``target_update_interval`` gradient steps
by Polyak averaging with ``tau`` (``tau = 1``: hard copy), a preallocated replay buffer
(:class:`agents.replay.ReplayBuffer`), a linear epsilon schedule over transitions, Huber loss,
Adam and gradient-norm clipping. Actions are batched over sessions: ``act`` scores every
candidate of every row in one forward pass and takes the top ``slate_size``.

Slates: with ``slate_size == 1`` the slate is the item and this is textbook DQN. With larger
slates it is "SlateQ-lite": the transition is credited to the clicked item (the first slot
when nothing was clicked, :func:`agents.replay.credited_item`), the target bootstraps from the
best single next candidate, and the slate is the top-k items by Q. :mod:`agents.slateq` does
the slate decomposition properly.

Terminated transitions do not bootstrap; truncated ones do (from their final observation).

Speed (issue 18): scoring without autograd (acting, the double-Q argmax, the target) runs the
network's operations on reused buffers (:meth:`ItemScorer._score_no_grad`), and the gradient
step runs the network's forward and backward by hand (:meth:`ItemScorer.forward_rows`,
:meth:`ItemScorer.backward_rows`) instead of through an autograd graph. Both run the same
kernels on the same layouts as the plain autograd formulation, so seeded training is bit for bit
what it was (``tests/agents/test_learner_digests.py``; ``test_item_scorer_paths_bit_identical``
compares every path with autograd).

Training and evaluation go through the project's one rollout loop (:mod:`agents.rollout`,
:class:`agents.runner.Runner`, :func:`agents.evaluation.evaluate`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

# check_q_hyperparameters, clone_state_dict and polyak_update moved to agents.qbase; they stay
# importable from here (public names of this module)
from agents.qbase import (
    ReplayQLearner,
    check_q_hyperparameters,
    clone_state_dict,
    polyak_update,
)
from agents.replay import credited_item
from recsim_env.config import EnvConfig

__all__ = [
    "DQN",
    "ItemScorer",
    "check_q_hyperparameters",
    "clone_state_dict",
    "make_linear",
    "polyak_update",
]

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------- network
def make_linear(n_in: int, n_out: int, generator: torch.Generator, *, bias: bool = True
                ) -> nn.Linear:
    """An ``nn.Linear`` initialised from ``generator`` (never the global torch RNG).

    Same distribution as PyTorch's default: weights and bias ``U(-1/sqrt(n_in), 1/sqrt(n_in))``.
    """
    layer = nn.utils.skip_init(nn.Linear, n_in, n_out, bias=bias)
    bound = 1.0 / np.sqrt(max(n_in, 1))
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound, generator=generator)
        if bias:
            layer.bias.uniform_(-bound, bound, generator=generator)
    return layer


class ItemScorer(nn.Module):
    """Item-wise scorer ``f(u, c) -> scalar``, shared over candidates (see module docstring).

    Args:
        user_dim: length of the user features ``u``.
        item_dim: length of one candidate's features ``c``.
        hidden: hidden layer sizes (at least one).
        cross_dim: rank of the factorised user x item cross term (0 disables it).
        generator: torch generator for the initial weights.
    """

    def __init__(self, user_dim: int, item_dim: int, hidden: Sequence[int], cross_dim: int,
                 generator: torch.Generator) -> None:
        super().__init__()
        if len(hidden) < 1:
            raise ValueError(f"hidden must name at least one layer size, got {hidden!r}")
        h0 = hidden[0]
        self.user_in = make_linear(user_dim, h0, generator)
        self.item_in = make_linear(item_dim, h0, generator, bias=False)
        self.cross_dim = int(cross_dim)
        if self.cross_dim:
            self.user_proj = make_linear(user_dim, cross_dim, generator, bias=False)
            self.item_proj = make_linear(item_dim, cross_dim, generator, bias=False)
            self.cross_in = make_linear(cross_dim, h0, generator, bias=False)
        layers: list[nn.Module] = []
        for a, b in zip(hidden[:-1], hidden[1:]):
            layers += [nn.ReLU(), make_linear(a, b, generator)]
        layers += [nn.ReLU(), make_linear(hidden[-1], 1, generator)]
        self.head = nn.Sequential(*layers)

    def forward(self, user: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Score candidates: ``m`` per row, or one per row.

        Without autograd (``torch.no_grad`` or ``torch.inference_mode``: acting, TD targets)
        on CPU float32 it runs :meth:`_score_no_grad`, the same operations on reused buffers;
        the result is bit-identical either way.

        Args:
            user: (n, user_dim) float32.
            items: (n, m, item_dim) float32, or (n, item_dim): one candidate per row (the
                same numbers as ``items[:, None, :]`` with fewer autograd nodes).

        Returns:
            (n, m) float32, or (n,) for one candidate per row.
        """
        if (not torch.is_grad_enabled() and items.dim() == 3 and items.dtype == torch.float32
                and user.dtype == torch.float32 and items.device.type == "cpu"):
            return self._score_no_grad(user, items)

        def per_row(x: torch.Tensor) -> torch.Tensor:  # a user term broadcast over candidates
            return x[:, None, :] if items.dim() == 3 else x

        # F.linear on the layers' parameters: the same aten ops as calling the layers, without
        # the module-call overhead
        h = per_row(F.linear(user, self.user_in.weight, self.user_in.bias)) \
            + F.linear(items, self.item_in.weight)
        if self.cross_dim:
            h = h + F.linear(per_row(F.linear(user, self.user_proj.weight))
                             * F.linear(items, self.item_proj.weight), self.cross_in.weight)
        for layer in self.head:
            h = F.linear(h, layer.weight, layer.bias) if isinstance(layer, nn.Linear) \
                else torch.relu(h)
        return h.squeeze(-1)

    def forward_rows(self, user: torch.Tensor, item: torch.Tensor
                     ) -> tuple[torch.Tensor, tuple[Any, ...]]:
        """Scores of one candidate per row, ``self(user, item)`` without autograd, and what
        :meth:`backward_rows` needs to give the parameters their gradients.

        A hand-written forward and backward pair for the training step: the same aten
        operations autograd runs, in the same layouts (so the same bits; a test compares them
        with autograd), without building and walking an autograd graph.

        Args:
            user: (n, user_dim) float32.
            item: (n, item_dim) float32.

        Returns:
            (n,) scores and the saved intermediates.
        """
        with torch.no_grad():
            h = F.linear(user, self.user_in.weight, self.user_in.bias) \
                + F.linear(item, self.item_in.weight)
            p = q = x = None
            if self.cross_dim:
                p = F.linear(user, self.user_proj.weight)
                q = F.linear(item, self.item_proj.weight)
                x = p * q
                h = h + F.linear(x, self.cross_in.weight)
            inputs = []
            for layer in self.head:
                inputs.append(h)
                h = F.linear(h, layer.weight, layer.bias) if isinstance(layer, nn.Linear) \
                    else torch.relu(h)
        return h.squeeze(-1), (user, item, p, q, x, inputs)

    def backward_rows(self, saved: tuple[Any, ...], grad: torch.Tensor) -> None:
        """Set every parameter's ``.grad`` to the gradient of a loss whose gradient with
        respect to :meth:`forward_rows`'s scores is ``grad`` (n,): what ``loss.backward()``
        gives on parameters without gradients (it sets them, it does not accumulate).

        Autograd's formulas: a layer ``y = x W^T (+ b)`` gets ``dW = g^T x``, ``db = g.sum(0)``
        and passes ``g W`` on; ReLU passes ``threshold_backward(g, relu output, 0)``; the
        product ``p * q`` passes ``g * q`` and ``g * p``."""
        user, item, p, q, x, inputs = saved
        layers = list(self.head)
        with torch.no_grad():
            g = grad.unsqueeze(-1)
            for i in range(len(layers) - 1, -1, -1):
                layer = layers[i]
                if isinstance(layer, nn.Linear):
                    layer.weight.grad = g.t().mm(inputs[i])
                    layer.bias.grad = g.sum(0)
                    g = g.mm(layer.weight)
                else:  # the ReLU's output is the next layer's input
                    g = torch.ops.aten.threshold_backward(g, inputs[i + 1], 0)
            self.user_in.weight.grad = g.t().mm(user)
            self.user_in.bias.grad = g.sum(0)
            self.item_in.weight.grad = g.t().mm(item)
            if self.cross_dim:
                self.cross_in.weight.grad = g.t().mm(x)
                g_x = g.mm(self.cross_in.weight)
                self.user_proj.weight.grad = (g_x * q).t().mm(user)
                self.item_proj.weight.grad = (g_x * p).t().mm(item)

    def __getstate__(self) -> dict[str, Any]:
        """Pickles and deep copies (the target network) leave the reused buffers behind."""
        state = self.__dict__.copy()
        state.pop("_scratch", None)
        return state

    def _buffer(self, key: str, rows: int, cols: int) -> torch.Tensor:
        """A reused (rows, cols) float32 buffer (one per key and size; a handful of sizes
        occur: acting, replayed batches, evaluation)."""
        cache = self.__dict__.setdefault("_scratch", {})
        buf = cache.get((key, rows, cols))
        if buf is None:
            if len(cache) > 64:  # many batch sizes: start again rather than grow without bound
                cache.clear()
            with torch.inference_mode(False):  # a normal tensor, usable in either mode
                buf = cache[(key, rows, cols)] = torch.empty(rows, cols)
        return buf

    def _score_no_grad(self, user: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` without autograd: every (n * m)-row intermediate is written into a
        reused buffer (``out=`` and in-place versions of the same kernels, operands of the
        commutative adds and products swapped), which spares the allocations (and the page
        faults of returning large blocks to the system) of scoring many candidates. Returns a
        fresh (n, m) tensor."""
        n, m, d = items.shape
        rows = n * m
        if n == 1 or m == 1 or items.stride(0) == m * items.stride(1):
            # a view, as F.linear's reshape makes it (MKL's results depend on the strides)
            flat = items.view(rows, d)
        else:  # what F.linear's reshape would copy, copied once into a buffer
            flat = self._buffer("items", rows, d)
            flat.view(n, m, d).copy_(items)
        h = torch.mm(flat, self.item_in.weight.t(), out=self._buffer("h", rows,
                                                                         self.item_in.out_features))
        h3 = h.view(n, m, self.item_in.out_features)
        h3.add_(F.linear(user, self.user_in.weight, self.user_in.bias)[:, None, :])
        if self.cross_dim:
            q = torch.mm(flat, self.item_proj.weight.t(), out=self._buffer("q", rows,
                                                                               self.cross_dim))
            q.view(n, m, self.cross_dim).mul_(F.linear(user, self.user_proj.weight)[:, None, :])
            h.add_(torch.mm(q, self.cross_in.weight.t(),
                            out=self._buffer("c", rows, self.cross_in.out_features)))
        layers = list(self.head)
        for i, layer in enumerate(layers):
            if not isinstance(layer, nn.Linear):
                h.relu_()
            elif i == len(layers) - 1:
                h = torch.addmm(layer.bias, h, layer.weight.t())
            else:
                h = torch.addmm(layer.bias, h, layer.weight.t(),
                                out=self._buffer(f"head{i}", rows, layer.out_features))
        return h.view(n, m)


def huber_grad(scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The gradient of ``smooth_l1_loss(scores, target)`` (mean, beta 1) with respect to
    ``scores``: the kernel autograd's ``loss.backward()`` runs, called directly."""
    return torch.ops.aten.smooth_l1_loss_backward(torch.ones(()), scores, target, 1, 1.0)


# ---------------------------------------------------------------------------------- learner
class DQN(ReplayQLearner):
    """Double DQN over an item-wise scoring network (see the module docstring).

    The replay, epsilon schedule, acting, update loop, gradient step, target updates and state
    are :class:`agents.qbase.ReplayQLearner`'s; the network and the target are this class's.

    Args:
        config: the world's config (observation layout, slate size).
        seed: seed of the learner's own numpy and torch generators.
        gamma: discount.
        lr: Adam learning rate.
        **hparams: :class:`agents.qbase.ReplayHParams` (gamma, lr, batch and replay sizes,
            target updates, the epsilon schedule, network sizes, reward scale).
        double_q: double DQN target (else the target network's own max).
    """

    kind = "DQN"

    def __init__(self, config: EnvConfig, *, seed: int = 0, double_q: bool = True,
                 **hparams: Any) -> None:
        super().__init__(config, seed=seed, **hparams)
        self.double_q = bool(double_q)
        self._set_networks(ItemScorer(*self._net_dims(), tuple(self.hp.hidden),
                                      self.hp.cross_dim, self.torch_rng))

    @torch.inference_mode()
    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """(n, obs_dim) -> (n, n_candidates) float32 online Q of every candidate."""
        return self.q_net(*self._split(obs)).numpy()

    def _train_step(self, b: dict[str, np.ndarray]) -> dict[str, float]:
        n = b["obs"].shape[0]
        rows = torch.arange(n)
        user, cand = self._split(b["obs"])
        a = torch.from_numpy(credited_item(b["action"], b["clicked"]))
        q_sa, saved = self.q_net.forward_rows(user, cand[rows, a])
        with torch.no_grad():
            user_n, cand_n = self._split(b["next_obs"])
            if self.double_q:
                a_next = self.q_net(user_n, cand_n).argmax(dim=1)
                q_next = self.q_target(user_n, cand_n[rows, a_next])
            else:
                q_next = self.q_target(user_n, cand_n).max(dim=1).values
            target = self._td_target(b, q_next)
        loss = nn.functional.smooth_l1_loss(q_sa, target)
        self.q_net.backward_rows(saved, huber_grad(q_sa, target))
        self._gradient_step()
        return {"train/loss": float(loss.detach()), "train/q_mean": float(q_sa.detach().mean())}
