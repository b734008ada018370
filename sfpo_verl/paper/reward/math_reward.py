"""Math reward for verl: 1 if the response's final answer equals the ground truth, else 0,
or `format_score` for a boxed answer that is wrong.

Plugged in through verl's custom reward function; verl passes the function's extra keywords
from `reward_kwargs` (verl.trainer.ppo.reward.get_custom_reward_fn):

    reward.custom_reward_function.path=pkg://sfpo_verl.paper.reward.math_reward
    reward.custom_reward_function.name=compute_score
    # optional: +reward.custom_reward_function.reward_kwargs.format_score=0.1  (the authors' runs)
    # optional: +reward.custom_reward_function.reward_kwargs.timeout_s=20

The answer is the last `\\boxed{}` (see answer_extraction for the alternatives accepted);
equality is decided by math-verify in a killable subprocess (verifier_pool), so every call
returns within `timeout_s`, from any thread, plus a verifier start-up when one is needed (and,
when every verifier is busy, the wait for one: each busy one ends within its own limit). No
response or ground truth makes it raise: an unusable one scores 0 and says why in `reason`.
"""

from __future__ import annotations

import os
import re
import threading
import time
from typing import Any, NamedTuple

from sfpo_verl.paper.reward.answer_extraction import extract_final_answer, last_boxed_content, normalize_answer
from sfpo_verl.paper.reward.verifier_pool import Outcome, VerifierPool, VerifierUnavailable

DEFAULT_TIMEOUT_S = 10.0

# Verifier subprocesses per calling process (each verl reward worker has its own pool).
VERIFIER_PROCESSES_ENV = "SFPO_VERIFIER_PROCESSES"
DEFAULT_VERIFIER_PROCESSES = 2

# No benchmark answer is this long; longer "answers" are garbage not worth a sympy parse.
MAX_ANSWER_CHARS = 1000

# A ground truth is an answer or a list of accepted ones; nesting deeper than this holds none.
MAX_GROUND_TRUTH_DEPTH = 8

# How much of the extracted answer is kept in the reward's extra info (and verl's dumps).
PRED_CHARS_KEPT = 200

_INTEGER = re.compile(r"-?\d+")

# Why a response got its score; every result carries exactly one.
REASON_CORRECT = "correct"
REASON_WRONG = "wrong_answer"
REASON_NO_ANSWER = "no_answer"
REASON_EMPTY = "empty_response"
REASON_TOO_LONG = "answer_too_long"
REASON_TIMEOUT = "timeout"
REASON_VERIFIER_ERROR = "verifier_error"
REASON_NO_GROUND_TRUTH = "missing_ground_truth"
REASON_INTERNAL_ERROR = "internal_error"


class Grade(NamedTuple):
    correct: bool
    pred: str
    reason: str
    boxed: bool = False  # the answer graded was the content of the response's last box


def compute_score(
    data_source: Any,
    solution_str: Any,
    ground_truth: Any,
    extra_info: dict | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    format_score: float = 0.0,
    **verl_kwargs: Any,
) -> dict:
    """verl's reward-function signature; returns the score and the extra info verl logs.

    Keys: `score` (1.0 correct; `format_score` when the last box holds a wrong answer; else
    0.0), `acc` (1.0 / 0.0: what verl's validation metrics and DAPO's group filter read, so
    they stay accuracy whatever the format score), `pred` (the extracted answer, for verl's
    maj@k), `reason`, and `source` (the row's data_source, echoed so verl's validation dumps,
    which omit it, say which benchmark each generation belongs to).
    """
    format_score = float(format_score)
    if not 0.0 <= format_score < 1.0:
        raise ValueError(f"format_score={format_score}: expected a value in [0, 1), below a correct answer's 1")
    pool = shared_pool()
    try:
        grade = grade_response(solution_str, ground_truth, pool=pool, timeout_s=float(timeout_s))
    except VerifierUnavailable:
        raise  # a broken environment must fail loudly, not score every response 0
    except Exception as error:  # last resort: one odd response must never take down a reward worker
        grade = Grade(False, "", f"{REASON_INTERNAL_ERROR}:{type(error).__name__}")
    accuracy = 1.0 if grade.correct else 0.0
    score = format_score if grade.boxed and grade.reason == REASON_WRONG else accuracy
    return {"score": score, "acc": accuracy, "pred": grade.pred, "reason": grade.reason, "source": str(data_source)}


def grade_response(response: Any, ground_truth: Any, *, pool: VerifierPool, timeout_s: float) -> Grade:
    """Grade one response against one ground truth (or a list of accepted answers)."""
    text = _as_text(response)
    if not text.strip():
        return Grade(False, "", REASON_EMPTY)
    golds = accepted_answers(ground_truth)
    if not golds:
        return Grade(False, "", REASON_NO_GROUND_TRUTH)
    extracted = extract_final_answer(text)
    pred = normalize_answer(extracted.text) if extracted else ""
    if not pred:
        return Grade(False, "", REASON_NO_ANSWER)
    boxed = extracted.method == "boxed"
    if len(pred) > MAX_ANSWER_CHARS:
        return Grade(False, pred[:PRED_CHARS_KEPT], REASON_TOO_LONG, boxed)

    deadline = time.monotonic() + timeout_s
    outcomes = set()
    for gold in golds:
        outcome = _quick_outcome(gold, pred)
        if outcome is None:
            remaining = deadline - time.monotonic()
            outcome = pool.compare(gold, pred, remaining) if remaining > 0 else Outcome.TIMEOUT
        if outcome is Outcome.MATCH:
            return Grade(True, pred[:PRED_CHARS_KEPT], REASON_CORRECT, boxed)
        outcomes.add(outcome)
    if Outcome.TIMEOUT in outcomes:
        reason = REASON_TIMEOUT
    elif Outcome.ERROR in outcomes:
        reason = REASON_VERIFIER_ERROR
    else:
        reason = REASON_WRONG
    return Grade(False, pred[:PRED_CHARS_KEPT], reason, boxed)


def accepted_answers(ground_truth: Any, depth: int = 0) -> list[str]:
    """The ground truth as a list of normalized answer strings (a list, array or scalar in;
    lists nested deeper than MAX_GROUND_TRUTH_DEPTH, or holding themselves, add no answer)."""
    if ground_truth is None:
        return []
    if isinstance(ground_truth, (list, tuple)) or hasattr(ground_truth, "tolist"):
        if depth == MAX_GROUND_TRUTH_DEPTH:
            return []
        items = ground_truth.tolist() if hasattr(ground_truth, "tolist") else ground_truth
        if not isinstance(items, list):  # a numpy scalar
            items = [items]
        return [answer for item in items for answer in accepted_answers(item, depth + 1)]
    if isinstance(ground_truth, float) and ground_truth.is_integer():
        ground_truth = int(ground_truth)  # "27.0" from a float column means 27
    answer = _as_text(ground_truth)
    answer = normalize_answer(last_boxed_content(answer) or answer)
    # A "ground truth" longer than any answer is not one (and could not be compared in time).
    return [answer] if answer and len(answer) <= MAX_ANSWER_CHARS else []


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    try:
        return str(value)
    except ValueError:  # an int over Python's 4300-digit str() limit: no text an answer could be
        return ""


def _quick_outcome(gold: str, pred: str) -> Outcome | None:
    """Settle the common cases without a subprocess round trip: identical text, or two integers.

    Identical means the same words: math-verify reads blanks ("32, 349" is a list, "32,349"
    a number), so text that differs only in blanks is left to it.
    """
    if gold.split() == pred.split():
        return Outcome.MATCH
    if _INTEGER.fullmatch(gold) and _INTEGER.fullmatch(pred):
        return Outcome.MATCH if int(gold) == int(pred) else Outcome.MISMATCH
    return None


_shared_pool: tuple[int, VerifierPool] | None = None
_shared_pool_lock = threading.Lock()


def shared_pool() -> VerifierPool:
    """This process's verifier pool (a forked child gets its own, never its parent's pipes)."""
    global _shared_pool
    with _shared_pool_lock:
        if _shared_pool is None or _shared_pool[0] != os.getpid():
            raw = os.environ.get(VERIFIER_PROCESSES_ENV, str(DEFAULT_VERIFIER_PROCESSES))
            if not raw.isdigit() or int(raw) < 1:
                raise ValueError(f"{VERIFIER_PROCESSES_ENV}={raw!r}: expected a positive integer")
            _shared_pool = (os.getpid(), VerifierPool(int(raw)))
        return _shared_pool[1]
