"""The names of `rpjax reproduce`'s experiments, in the order "all" runs them: the one list.

A module of its own, importing nothing, so that the command line can offer the names (and
refuse a bad one) without importing the experiments. `rpjax._src.experiments.reproduce`
builds its `REGISTRY` from this tuple and refuses an experiment missing on either side.
"""

EXPERIMENTS = ("rap", "attacks", "inversion", "frontier", "distillation", "audit")
"""Frontier reuses inversion's sweep, so it comes after it."""
