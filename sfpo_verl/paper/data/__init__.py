"""Data preparation: the paper's training and evaluation sets as verl parquet (see prepare)."""
