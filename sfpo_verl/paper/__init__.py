"""The paper toolkit: data preparation with the authors' prompt, the math reward
(math-verify), benchmark evaluation, run analysis (curves, rollouts-to-match) and the paper's
reported numbers."""
