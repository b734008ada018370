"""Math reward for verl: 1 if the response's final answer equals the ground truth, else 0.

Plugged in through verl's custom reward function:

    reward.custom_reward_function.path=pkg://sfpo_verl.reward.math_reward
    reward.custom_reward_function.name=compute_score
    # optional: +reward.custom_reward_function.reward_kwargs.timeout_s=20

The answer is the last `\\boxed{}` (see answer_extraction for the alternatives accepted);
equality is decided by math-verify in a killable subprocess (verifier_pool), so every call
returns within `timeout_s`, from any thread. No input makes it raise: an unusable response
scores 0 and says why in `reason`.
"""

from __future__ import annotations

import os
import re
import threading
import time
from typing import Any, NamedTuple

from sfpo_verl.reward.answer_extraction import extract_final_answer, last_boxed_content, normalize_answer
from sfpo_verl.reward.verifier_pool import Outcome, VerifierPool, VerifierUnavailable

DEFAULT_TIMEOUT_S = 10.0

# Verifier subprocesses per calling process (each verl reward worker has its own pool).
VERIFIER_PROCESSES_ENV = "SFPO_VERIFIER_PROCESSES"
DEFAULT_VERIFIER_PROCESSES = 2

# No benchmark answer is this long; longer "answers" are garbage not worth a sympy parse.
MAX_ANSWER_CHARS = 1000

# How much of the extracted answer is kept in the reward's extra info (and verl's dumps).
PRED_CHARS_KEPT = 200

_INTEGER = re.compile(r"-?\d+")
_WHITESPACE = re.compile(r"\s+")

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


def compute_score(
    data_source: Any,
    solution_str: Any,
    ground_truth: Any,
    extra_info: dict | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    **verl_kwargs: Any,
) -> dict:
    """verl's reward-function signature; returns the score and the extra info verl logs.

    Keys: `score` and `acc` (1.0 / 0.0; `acc` is what verl's validation metrics and DAPO's
    group filter read), `pred` (the extracted answer, for verl's maj@k), `reason`, and
    `source` (the row's data_source, echoed so verl's validation dumps, which omit it, say
    which benchmark each generation belongs to).
    """
    pool = shared_pool()
    try:
        grade = grade_response(solution_str, ground_truth, pool=pool, timeout_s=float(timeout_s))
    except VerifierUnavailable:
        raise  # a broken environment must fail loudly, not score every response 0
    except Exception as error:  # last resort: one odd response must never take down a reward worker
        grade = Grade(False, "", f"{REASON_INTERNAL_ERROR}:{type(error).__name__}")
    value = 1.0 if grade.correct else 0.0
    return {"score": value, "acc": value, "pred": grade.pred, "reason": grade.reason, "source": str(data_source)}


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
    if len(pred) > MAX_ANSWER_CHARS:
        return Grade(False, pred[:PRED_CHARS_KEPT], REASON_TOO_LONG)

    deadline = time.monotonic() + timeout_s
    outcomes = set()
    for gold in golds:
        outcome = _quick_outcome(gold, pred)
        if outcome is None:
            remaining = deadline - time.monotonic()
            outcome = pool.compare(gold, pred, remaining) if remaining > 0 else Outcome.TIMEOUT
        if outcome is Outcome.MATCH:
            return Grade(True, pred[:PRED_CHARS_KEPT], REASON_CORRECT)
        outcomes.add(outcome)
    if Outcome.TIMEOUT in outcomes:
        reason = REASON_TIMEOUT
    elif Outcome.ERROR in outcomes:
        reason = REASON_VERIFIER_ERROR
    else:
        reason = REASON_WRONG
    return Grade(False, pred[:PRED_CHARS_KEPT], reason)


def accepted_answers(ground_truth: Any) -> list[str]:
    """The ground truth as a list of normalized answer strings (a list, array or scalar in)."""
    if ground_truth is None:
        return []
    if isinstance(ground_truth, (list, tuple)) or hasattr(ground_truth, "tolist"):
        items = ground_truth.tolist() if hasattr(ground_truth, "tolist") else ground_truth
        if not isinstance(items, list):  # a numpy scalar
            items = [items]
        return [answer for item in items for answer in accepted_answers(item)]
    if isinstance(ground_truth, float) and ground_truth.is_integer():
        ground_truth = int(ground_truth)  # "27.0" from a float column means 27
    answer = _as_text(ground_truth)
    answer = normalize_answer(last_boxed_content(answer) or answer)
    return [answer] if answer else []


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def _quick_outcome(gold: str, pred: str) -> Outcome | None:
    """Settle the common cases without a subprocess round trip: identical text, or two integers."""
    if _WHITESPACE.sub("", gold) == _WHITESPACE.sub("", pred):
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
