"""Experiments: spec -> runs -> report (the suite, the studies, throughput)."""
