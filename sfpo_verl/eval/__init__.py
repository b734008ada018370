"""Benchmark evaluation of generations: `python -m sfpo_verl.eval` (see cli)."""
