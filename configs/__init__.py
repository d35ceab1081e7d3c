"""The project's configuration tables (TOML), installed as the package ``recsim_configs``.

* ``learners/<learner>.toml``: every learner's hyperparameters per scenario (``[base]`` for
  every scenario, then one table per scenario that overrides keys). Read by the benchmark
  suite, ``recsim-marl train``, the demo and the scripts through
  :func:`agents.hparams.learner_hparams`; nowhere else holds them.
* ``suites/<suite>.toml``: the benchmark suites (scenarios, policies, budgets, tuning and
  reporting seeds, evaluation protocol), read by :mod:`agents.experiments.suite`.
* ``studies/<study>.toml``: pre-registered studies (regimes, methods, budgets, seeds,
  hypotheses), e.g. ``studies/consensus_scarcity.toml`` read by
  :mod:`agents.experiments.consensus_scarcity`.
* ``*.toml`` at the top: training configs for ``recsim-marl train``.
"""
