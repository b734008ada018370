"""The datasets the paper trains and evaluates on: their hub location, their schema, and the
stable `data_source` name each gets in the prepared parquet.

Each source reads a row of its own schema into (problem, answer). Where popular mirrors of
a dataset spell a column differently, the reader accepts each spelling, first match wins.
The default hub dataset of each training source is the one the SFPO authors trained on;
the other known mirrors read as well (`--input NAME=hf:ORG/NAME[:CONFIG][@SPLIT]`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sfpo_verl.paper.data.records import FieldError, checked_text, field, find_field, text_field, type_name
from sfpo_verl.paper.numbers import BENCHMARKS
from sfpo_verl.paper.reward.answer_extraction import last_boxed_content, strip_math_delimiters


class UnusableRow(Exception):
    """A row has its fields but no usable answer (e.g. a MATH solution without a box): skipped and counted."""


def answer_field(row: dict, names: tuple[str, ...]) -> str:
    """A ground-truth answer as one string: text, a number (27.0 written as 27) or a list of
    them (OlympiadBench, joined); anything else is a FieldError naming the field."""
    name, value = find_field(row, names)
    items = value if isinstance(value, (list, tuple)) else [value]
    return ", ".join(_answer_text(item, f"field {name!r}") for item in items)


def _answer_text(value: Any, what: str) -> str:
    expected = "expected text, a finite number or a list of them"
    if isinstance(value, str):
        return strip_math_delimiters(checked_text(value, what))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise FieldError(f"{what} is {value}; {expected}")
        return str(int(value)) if value.is_integer() else str(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise FieldError(f"{what} is of type {type_name(value)}; {expected}")


# DAPO-Math-17k wraps each problem in an instruction for an "Answer:" line; the problem is
# re-wrapped in this package's own prompt (sfpo_verl.paper.data.prompt), so the wrapper goes.
_DAPO_WRAPPER = re.compile(
    r"^Solve the following math problem step by step\..*?where \$Answer is the answer to the problem\.\s*"
    r"(?P<problem>.*?)"
    r"\s*Remember to put your answer on its own line after \"Answer:\"\.?\s*$",
    re.DOTALL,
)


def _read_dapo(row: dict) -> tuple[str, str]:
    # Original release: `prompt` is a chat list holding the wrapped problem, the answer in
    # reward_model.ground_truth. The cleaned release the authors used: `prompt` is the bare
    # problem, `target` the answer. open-r1's deduplicated mirror: `prompt` bare, `solution`.
    prompt = field(row, ("prompt",))
    if isinstance(prompt, str):
        problem = checked_text(prompt, "field 'prompt'")
    elif isinstance(prompt, list):
        content = next((m.get("content") for m in prompt if isinstance(m, dict) and m.get("role") == "user"), None)
        if not content:
            raise FieldError("field 'prompt' has no user message with 'content'")
        problem = checked_text(content, "the user message's 'content' in field 'prompt'")
    else:
        raise FieldError(f"field 'prompt' is of type {type_name(prompt)}; expected text or a list of chat messages")
    wrapped = _DAPO_WRAPPER.match(problem)
    if wrapped:
        problem = wrapped.group("problem")
    return problem, answer_field(row, ("reward_model.ground_truth", "target", "solution"))


def _read_math_train(row: dict) -> tuple[str, str]:
    problem = text_field(row, ("problem",))
    answer = last_boxed_content(text_field(row, ("solution",)))
    if not answer:
        raise UnusableRow("its 'solution' has no \\boxed{} answer")
    return problem, answer


def _plain_reader(problem_fields: tuple[str, ...], answer_fields: tuple[str, ...]) -> Callable[[dict], tuple]:
    def read(row: dict) -> tuple[str, str]:
        return text_field(row, problem_fields), answer_field(row, answer_fields)

    return read


@dataclass(frozen=True)
class Source:
    """One dataset: `name` is the data_source written to the parquet (and the metric prefix in verl)."""

    name: str
    role: str  # "train" or "eval"
    hub_id: str
    hub_config: str | None
    hub_split: str
    read_row: Callable[[dict], tuple[str, str]]
    fields: str  # the schema, for --list-sources and error hints
    mirrors: tuple[str, ...] = ()  # other hub copies it reads, as ORG/NAME[:CONFIG][@SPLIT]


SOURCES = {
    source.name: source
    for source in (
        Source(
            name="dapo_math_17k",
            role="train",
            hub_id="haizhongzheng/DAPO-Math-17K-cleaned",  # the authors' training set
            hub_config=None,
            hub_split="train",
            read_row=_read_dapo,
            fields="prompt (str or chat list), target or reward_model.ground_truth or solution",
            mirrors=("open-r1/DAPO-Math-17k-Processed:en@train", "BytedTsinghua-SIA/DAPO-Math-17k@train"),
        ),
        Source(
            name="math_train",
            role="train",
            hub_id="xDAN2099/lighteval-MATH",  # the authors' copy of lighteval's MATH, 7,500 train problems
            hub_config=None,
            hub_split="train",
            read_row=_read_math_train,
            fields="problem, solution (answer = its last \\boxed{})",
            mirrors=("DigitalLearningGmbH/MATH-lighteval@train",),
        ),
        Source(
            name="math500",
            role="eval",
            hub_id="HuggingFaceH4/MATH-500",
            hub_config=None,
            hub_split="test",
            read_row=_plain_reader(("problem",), ("answer",)),
            fields="problem, answer",
        ),
        Source(
            name="aime24",
            role="eval",
            hub_id="HuggingFaceH4/aime_2024",
            hub_config=None,
            hub_split="train",
            read_row=_plain_reader(("problem", "Problem"), ("answer", "Answer")),
            fields="problem|Problem, answer|Answer",
        ),
        Source(
            name="aime25",
            role="eval",
            hub_id="math-ai/aime25",
            hub_config=None,
            hub_split="test",
            read_row=_plain_reader(("problem", "question"), ("answer",)),
            fields="problem|question, answer",
        ),
        Source(
            name="amc23",
            role="eval",
            hub_id="math-ai/amc23",
            hub_config=None,
            hub_split="test",
            read_row=_plain_reader(("question", "problem"), ("answer",)),
            fields="question|problem, answer",
        ),
        Source(
            name="minerva",
            role="eval",
            hub_id="math-ai/minervamath",
            hub_config=None,
            hub_split="test",
            read_row=_plain_reader(("question", "problem"), ("answer",)),
            fields="question|problem, answer",
        ),
        Source(
            name="olympiadbench",
            role="eval",
            hub_id="Hothan/OlympiadBench",
            hub_config="OE_TO_maths_en_COMP",
            hub_split="train",
            read_row=_plain_reader(("question", "problem"), ("final_answer", "answer")),
            fields="question|problem, final_answer (list)|answer",
        ),
    )
}

TRAIN_SOURCES = tuple(name for name, source in SOURCES.items() if source.role == "train")
# The evaluation sources are the paper's benchmarks, whose one list is sfpo_verl.paper.numbers.BENCHMARKS:
# a source each, named after it, in its order.
EVAL_SOURCES = BENCHMARKS
if tuple(name for name, source in SOURCES.items() if source.role == "eval") != EVAL_SOURCES:
    raise RuntimeError(f"the evaluation sources are not one per benchmark of sfpo_verl.paper.numbers.BENCHMARKS {BENCHMARKS}")
