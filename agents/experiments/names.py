"""The suite's names (suites, policies by kind), importable without torch: the command line
builds its ``--help`` and ``choices`` from them (:mod:`agents.experiments.suite` re-exports
them)."""

SUITE_NAMES = ("quick", "full")
"""``configs/suites/<name>.toml``."""

BASELINE_POLICIES = ("random", "most_popular", "epsilon_greedy", "ucb1", "thompson", "linucb",
                     "online_mf", "content_similarity")
ORACLE_POLICIES = ("myopic_oracle", "horizon_oracle", "long_term_oracle")
LEARNED_POLICIES = ("tabular_q", "linear_q", "dqn", "memory_dqn", "slateq", "memory_slateq",
                    "ppo", "memory_ppo", "sb3_dqn", "consensus_dqn")
POLICIES = BASELINE_POLICIES + ORACLE_POLICIES + LEARNED_POLICIES
