"""Property-based fuzzing of the math reward: whatever the response and the ground truth, from
one thread or sixteen, compute_score returns a well-formed result within its time limit plus a
bounded slack, and never falls back on its last-resort `internal_error`."""

import math
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sfpo_verl.paper.reward import math_reward
from sfpo_verl.paper.reward.math_reward import compute_score

TIMEOUT_S = 1.0
# On top of the limit: one verifier start-up (importing math-verify, about a second, more on a
# loaded machine), needed after a timeout killed a worker, plus the work done outside it.
SLACK_S = 8.0
KEYS = {"score", "acc", "pred", "reason", "source"}
THREADS = 16
MEGABYTE = 2**20

# Pieces of what models write, what breaks parsers and what blows up sympy; the strategies
# below glue them together with arbitrary characters (lone surrogates and NULs included).
FRAGMENTS = [
    "\\boxed{", "\\boxed ", "\\fbox{", "{", "}", "\\frac{", "^{", "_", "\\sqrt[", "\\left(", "\\right)",
    "\\begin{pmatrix}", "\\end{array}", "\\\\", "$", "$$", "\\$", "\\%", "%", "percent", "\\,", "\\!", "{,}",
    ",", ".", " ", "\n", "\t", "\x00", "\ud800", "\udfff", "\\text{", "\\infty", "\\pi", "x", "=", "-",
    "0", "1", "7", "3.5", "1e400", "10^{10^{10^{10}}}", "9**9**9**9", "9^{9^{9^{9}}}", "(", ")", "[", "]",
    "Answer:", "The final answer is ", " I hope it is correct.", "</think>", "\\cup", "\\{", "\\}",
]
# Where a model puts its answer; "%s" is the answer.
ANSWER_FORMS = [
    "\\boxed{%s}", "\\boxed %s", "\\fbox{%s}", "Answer: %s", "The final answer is $%s$. I hope it is correct.",
]

any_character = st.characters(exclude_categories=())
fragments = st.one_of(st.sampled_from(FRAGMENTS), st.text(any_character, max_size=4))
latex_like = st.lists(fragments, max_size=30).map("".join)
answers = st.lists(fragments, min_size=1, max_size=8).map("".join)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(any_character, max_size=40),
    latex_like,
    answers,
    st.binary(max_size=40),
)
ground_truths = st.one_of(
    scalars,
    st.lists(scalars, max_size=4),
    st.tuples(scalars, scalars),
    st.dictionaries(st.text(max_size=3), scalars, max_size=2),
    st.lists(st.integers(), max_size=4).map(np.array),
)
format_scores = st.sampled_from([0.0, 0.1])


@st.composite
def answered(draw) -> tuple[str, object]:
    """A response stating an answer in one of the forms above, and a ground truth that is that
    answer or another: these reach the verifier, where the time limit matters."""
    answer = draw(answers)
    response = draw(latex_like) + draw(st.sampled_from(ANSWER_FORMS)).replace("%s", answer) + draw(latex_like)
    return response, draw(st.one_of(st.just(answer), answers, ground_truths))


responses = st.one_of(latex_like, st.text(any_character), st.binary(), st.none(), st.integers(), st.floats())
calls = st.one_of(answered(), st.tuples(responses, ground_truths))


def check(result: dict, format_score: float, elapsed_s: float, limit_s: float) -> None:
    assert set(result) == KEYS
    assert result["score"] in {0.0, format_score, 1.0}
    assert result["acc"] in {0.0, 1.0}
    assert (result["score"] == 1.0) == (result["acc"] == 1.0)
    assert isinstance(result["pred"], str) and isinstance(result["reason"], str)
    assert not result["reason"].startswith("internal_error"), result["reason"]
    assert elapsed_s <= limit_s, f"{elapsed_s:.1f} s > {limit_s:.1f} s"


def timed_score(response, ground_truth, format_score):
    start = time.monotonic()
    result = compute_score("fuzz", response, ground_truth, timeout_s=TIMEOUT_S, format_score=format_score)
    return result, time.monotonic() - start


@given(call=calls, format_score=format_scores)
@example(call=("\\boxed{" + "{" * MEGABYTE, "5"), format_score=0.1)  # deeply nested, unbalanced
@example(call=("x" * MEGABYTE + "\\boxed{5}", "5"), format_score=0.0)  # a megabyte, then the answer
@example(call=("\\boxed{" * MEGABYTE, "5"), format_score=0.0)
@example(call=("\\boxed{1" + " " * 9_000 + "2}", "12"), format_score=0.0)  # a long blank run in a box
@example(call=("\\boxed " + "7" * MEGABYTE, "7"), format_score=0.1)  # a megabyte bare token
@example(call=("Answer: " + "1 " * MEGABYTE, "1"), format_score=0.0)
@example(call=("\ud800 \\boxed{\ud800}", "\udfff"), format_score=0.1)  # lone surrogates
@example(call=("\x00\\boxed{\x00}\x00", "\x00"), format_score=0.1)  # NUL bytes
@example(call=("\\boxed{10^{10^{10^{10}}}}", "7"), format_score=0.1)  # huge exponents
@example(call=("Answer: 9**9**9**9", "7"), format_score=0.1)
@example(call=("\\boxed{1e400}", math.inf), format_score=0.0)
@example(call=("\\boxed{5}", None), format_score=0.0)  # ground truths that are not strings
@example(call=("\\boxed{5}", 5), format_score=0.0)
@example(call=("\\boxed{5}", [None, 5.0, b"5"]), format_score=0.0)
@example(call=("\\boxed{5}", float("nan")), format_score=0.0)
@example(call=("\\boxed{5}", 10**5000), format_score=0.0)  # str() refuses ints this long
@example(call=("\\boxed{5}", "5" * 5000), format_score=0.0)  # int() refuses it as well
@example(call=("\\boxed{5}", "1" + " " * MEGABYTE + "2"), format_score=0.0)  # a megabyte of blanks
@example(call=("\\boxed{5}", "\\boxed{" + "5" * MEGABYTE + "}"), format_score=0.0)
@example(call=("\\boxed{5}", np.array(5)), format_score=0.0)
def test_any_response_and_ground_truth_get_a_valid_score_in_time(call, format_score):
    result, elapsed = timed_score(*call, format_score)
    check(result, format_score, elapsed, TIMEOUT_S + SLACK_S)


def test_a_recursive_ground_truth_gets_a_valid_score():
    nested = ["5"]
    nested.append(nested)
    result, elapsed = timed_score("\\boxed{5}", nested, 0.0)
    check(result, 0.0, elapsed, TIMEOUT_S + SLACK_S)
    assert result["reason"] == "correct"


@settings(max_examples=3)
@given(batch=st.lists(st.tuples(calls, format_scores), min_size=THREADS, max_size=THREADS))
def test_sixteen_threads_at_once_get_valid_scores_in_time(batch):
    # Threads share the process's verifier pool: a call may wait for the calls ahead of it, each
    # bounded by the limit and a restart, so the bound is one such round per worker's queue.
    workers = math_reward.shared_pool().max_workers
    limit_s = math.ceil(THREADS / workers) * (TIMEOUT_S + SLACK_S)
    batch[0] = (("\\boxed{10^{10^{10^{10}}}}", "7"), 0.1)  # one that times out, in every draw
    with ThreadPoolExecutor(max_workers=THREADS) as threads:
        timed = list(threads.map(lambda item: timed_score(*item[0], item[1]), batch))
    for (result, elapsed), (_, format_score) in zip(timed, batch, strict=True):
        check(result, format_score, elapsed, limit_s)
    assert timed[0][0]["reason"] == "timeout"
