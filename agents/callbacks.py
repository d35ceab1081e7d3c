"""Runner callbacks, in the style of Stable-Baselines3's ``BaseCallback``.

A callback hooks into :meth:`agents.runner.Runner.train` without subclassing the runner or
reusing one of its slots for another purpose::

    class StopAt(Callback):
        def on_step(self, step):
            return self.runner.steps < 10_000      # False stops training

    runner = Runner(cfg, learners, run, callbacks=[ConsensusWrapper(group), StopAt()])

Hooks, in order: :meth:`Callback.on_training_start`, then after every update round (one world
step, every learner updated once) :meth:`Callback.on_step`, after every evaluation
:meth:`Callback.on_evaluation`, and :meth:`Callback.on_training_end`. A callback with state
that must survive a checkpoint returns it from :meth:`Callback.state_dict`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from agents.rollout import RolloutStep
    from agents.runner import Runner

__all__ = ["Callback", "EvalRecorder"]


class Callback:
    """Base class: every hook does nothing; override the ones you need."""

    runner: Runner

    def init_callback(self, runner: Runner) -> None:
        """Bind to the runner (called once, when the runner is built)."""
        self.runner = runner

    def on_training_start(self) -> None:
        """Before the first step of :meth:`Runner.train`."""

    def on_step(self, step: RolloutStep) -> bool:
        """After each update round. Return False to stop training (a clean stop: the run is
        evaluated and checkpointed as at its end)."""
        return True

    def on_evaluation(self, result: dict[str, Any]) -> None:
        """After each evaluation of :meth:`Runner.evaluate` during training."""

    def on_training_end(self) -> None:
        """After the last step of :meth:`Runner.train` (also after a stop or Ctrl-C)."""

    def state_dict(self) -> dict[str, Any] | None:
        """State saved in the runner's checkpoint (``None``: nothing to save)."""
        return None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""


class EvalRecorder(Callback):
    """Keep every evaluation's result in :attr:`history` (the runner also keeps
    ``eval_history``; this is for code that only holds the callback)."""

    def __init__(self) -> None:
        self.history: list[dict[str, Any]] = []

    def on_evaluation(self, result: dict[str, Any]) -> None:  # noqa: D102
        self.history.append(result)
