"""Experiment scripts that reproduce the tables and figures, and the benchmarks."""
