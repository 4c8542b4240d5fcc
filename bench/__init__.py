"""Benchmarks: ``python -m bench`` prints the figures; docs/benchmarks.md keeps the results."""
