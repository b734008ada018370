"""The embedded default task for CPU runs: sums of three one-digit numbers (a+b+c) with a tiny Qwen2,
validated on held-out problems and graded by the paper's math reward (sfpo_verl.paper.reward).

build.py makes everything locally (no hub): tokenizer.py, model.py (model + brief
pre-training), arithmetic.py (problems, train/validation split, verl parquet).
"""
