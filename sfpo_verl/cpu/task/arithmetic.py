"""The synthetic arithmetic task: problems, their train/validation split, and verl parquet files.

A problem is `a+b+c` with operands in [0, max_operand]; the answer is the decimal sum, and a
response states it in a box (`\\boxed{16}`), the form the paper's math reward grades, so CPU
runs exercise the reward path of the paper's runs. Three one-digit operands (1000 problems by
default), not two-digit ones: a tiny character-level model learns to add three digits well
enough to generalise in under three minutes of CPU pre-training, while two-digit sums stayed
near 5% on unseen problems. The problems are split at random (seeded) into disjoint training
and validation sets, so the validation accuracy measures how well the policy solves problems
RL never trained on.
Rows follow verl's RL dataset schema: `data_source`, `prompt` (chat messages),
`ability`, `reward_model.ground_truth`, `extra_info`.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

DATA_SOURCE = "sfpo_arithmetic"
ABILITY = "arithmetic"
REQUIRED_COLUMNS = ("data_source", "prompt", "ability", "reward_model", "extra_info")
OPERANDS = 3


@dataclass(frozen=True)
class Problem:
    operands: tuple[int, ...]

    @property
    def question(self) -> str:
        return "+".join(map(str, self.operands))

    @property
    def answer(self) -> str:
        return str(sum(self.operands))


def boxed(answer: str) -> str:
    """A response stating `answer`, as the model learns to write it and the reward reads it."""
    return f"\\boxed{{{answer}}}"


def all_problems(max_operand: int) -> list[Problem]:
    if max_operand < 1:
        raise ValueError(f"max_operand must be at least 1, got {max_operand}")
    return [Problem(operands) for operands in itertools.product(range(max_operand + 1), repeat=OPERANDS)]


def split_problems(max_operand: int, val_fraction: float, seed: int) -> dict[str, list[Problem]]:
    """Every problem once, shuffled with `seed`: the first `val_fraction` of them are the
    validation set ("val"), the rest the training set ("train")."""
    problems = all_problems(max_operand)
    n_val = round(len(problems) * val_fraction)
    if not 0 < n_val < len(problems):
        raise ValueError(f"val_fraction={val_fraction} leaves no training or no validation problem "
                         f"among {len(problems)}")
    random.Random(seed).shuffle(problems)
    return {"train": problems[n_val:], "val": problems[:n_val]}


def to_verl_rows(problems: list[Problem], split: str) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "data_source": DATA_SOURCE,
                "prompt": [{"role": "user", "content": p.question}],
                "ability": ABILITY,
                "reward_model": {"style": "rule", "ground_truth": p.answer},
                "extra_info": {"split": split, "index": i, "question": p.question},
            }
            for i, p in enumerate(problems)
        ]
    )


def write_datasets(out_dir: Path, splits: dict[str, list[Problem]]) -> dict[str, Path]:
    """One parquet file per split (`train.parquet`, `val.parquet`), rows in the split's order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {split: out_dir / f"{split}.parquet" for split in splits}
    for split, problems in splits.items():
        to_verl_rows(problems, split).to_parquet(paths[split])
    return paths
