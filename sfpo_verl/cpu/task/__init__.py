"""The embedded default task for CPU runs: single-digit addition with a tiny Qwen2.

build.py makes everything locally (no hub): tokenizer.py, model.py (model + brief
pre-training), arithmetic.py (problems, verl parquet), reward.py (verl custom reward).
"""
