"""Run analysis: curves and the paper's efficiency measures (`python -m sfpo_verl.paper.analysis`, see cli)."""
