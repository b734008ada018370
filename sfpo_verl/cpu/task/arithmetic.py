"""The synthetic arithmetic task: problems, answer parsing, and verl-format parquet files.

A problem is `a+b` with operands in [0, max_operand]; the answer is the decimal sum.
The task is small on purpose (100 problems by default): a 2-core CPU can pre-train a
tiny model to partial accuracy in about a minute and then show RL improving it within
a few hundred rollouts. RL trains on every problem, so the validation file (all
problems again, sampled at temperature 1) measures how well the policy solves the
task, not generalisation to unseen problems.
Rows follow verl's RL dataset schema: `data_source`, `prompt` (chat messages),
`ability`, `reward_model.ground_truth`, `extra_info`.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

DATA_SOURCE = "sfpo_arithmetic"
ABILITY = "arithmetic"
REQUIRED_COLUMNS = ("data_source", "prompt", "ability", "reward_model", "extra_info")

# At most 18 digits: longer runs are garbage, and int() refuses very long digit strings.
_ANSWER = re.compile(r"\s*(-?\d{1,18})\s*")


@dataclass(frozen=True)
class Problem:
    a: int
    b: int

    @property
    def question(self) -> str:
        return f"{self.a}+{self.b}"

    @property
    def answer(self) -> str:
        return str(self.a + self.b)


def all_problems(max_operand: int) -> list[Problem]:
    if max_operand < 1:
        raise ValueError(f"max_operand must be at least 1, got {max_operand}")
    return [Problem(a, b) for a in range(max_operand + 1) for b in range(max_operand + 1)]


def parse_answer(text: str) -> int | None:
    """The integer a response states, or None when it is anything but one number."""
    match = _ANSWER.fullmatch(text)
    return int(match.group(1)) if match else None


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


def write_datasets(out_dir: Path, max_operand: int, seed: int) -> dict[str, Path]:
    """train.parquet (every problem, shuffled) and val.parquet (every problem, in order)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    problems = all_problems(max_operand)
    shuffled = list(problems)
    random.Random(seed).shuffle(shuffled)
    paths = {"train": out_dir / "train.parquet", "val": out_dir / "val.parquet"}
    to_verl_rows(shuffled, "train").to_parquet(paths["train"])
    to_verl_rows(problems, "val").to_parquet(paths["val"])
    return paths
