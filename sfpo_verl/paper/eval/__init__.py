"""Benchmark evaluation of generations: `python -m sfpo_verl.paper.eval` (see cli)."""
