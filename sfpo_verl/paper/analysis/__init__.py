"""Run analysis: curves and the paper's efficiency measures (`python -m sfpo_verl.paper.analysis`, see cli);
per-run measures of an accuracy curve (measures) and paired-by-seed comparisons of two arms (paired)."""
