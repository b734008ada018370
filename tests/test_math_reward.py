"""The math reward: a hand-checked answer table, the failure reasons, the time limit, verl's plug-in path."""

import sys
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest

from sfpo_verl.paper.reward import math_reward
from sfpo_verl.paper.reward.answer_extraction import extract_final_answer, last_boxed_content, normalize_answer
from sfpo_verl.paper.reward.math_reward import compute_score, grade_response
from sfpo_verl.paper.reward.verifier_pool import VerifierPool, VerifierUnavailable

# (response, ground truth, correct?) — each checked by hand, not copied from the output.
ANSWER_TABLE = [
    # plain and equivalent numbers
    ("The answer is \\boxed{42}.", "42", True),
    ("\\boxed{007}", "7", True),
    ("\\boxed{1,000}", "1000", True),
    ("\\boxed{1\\,000}", "1000", True),
    ("$\\boxed{12}$ units", 12.0, True),
    ("\\boxed{1.2 \\times 10^{-3}}", "0.0012", True),
    ("\\boxed{\\$18.90}", "18.90", True),
    # digit grouping: MATH's `,\!` (math-verify's own test case), `{,}` and SI thin spaces
    ("\\boxed{32,\\! 349}", "32349", True),
    ("\\boxed{32,\\!349}", "32349", True),
    ("\\boxed{32{,}349}", "32349", True),
    ("\\boxed{32{,} 349}", "32349", True),
    ("\\boxed{32\\,349}", "32349", True),
    ("\\boxed{32\\, 349}", "32349", True),
    ("\\boxed{1,\\!000,\\!000}", "10^6", True),
    ("\\boxed{32349}", "32,\\!349", True),  # a ground truth written the MATH way
    ("\\boxed{100,\\,200}", "100, 200", True),  # a visible space after the comma: a list, kept one
    # percents: MATH grades "28\%" and "28" alike; the word as well as the sign
    ("\\boxed{50\\%}", "50", True),
    ("\\boxed{28 percent}", "28\\%", True),  # math-verify's own test case
    ("\\boxed{28\\text{ percent}}", "28\\%", True),
    ("\\boxed{28\\mbox{ percent}}", "28", True),
    ("\\boxed{28 per cent}", "28", True),
    ("\\boxed{28 \\%}", "28\\%", True),
    ("\\boxed{28}", "28\\%", True),
    # fractions and radicals
    ("\\boxed{\\dfrac{1}{2}}", "\\frac{1}{2}", True),
    ("\\boxed{0.5}", "\\frac{1}{2}", True),
    ("\\boxed{\\frac12}", "1/2", True),
    ("\\boxed{\\tfrac{3}{4}}", "0.75", True),
    ("\\boxed{2.25}", "\\dfrac94", True),
    ("\\boxed{\\frac{\\sqrt{2}}{2}}", "\\frac{1}{\\sqrt{2}}", True),
    ("\\boxed{2\\sqrt{3}}", "\\sqrt{12}", True),
    ("\\boxed{\\pi/2}", "\\frac{\\pi}{2}", True),
    # degrees and units
    ("\\boxed{30^\\circ}", "30", True),
    ("\\boxed{10^{\\circ}}", "10", True),
    ("\\boxed{5\\text{ cm}}", "5", True),
    # intervals, sets, tuples, matrices, expressions, equations
    ("\\boxed{[1, 2)}", "[1,2)", True),
    ("\\boxed{(-\\infty, -1) \\cup (1, \\infty)}", "(-\\infty,-1)\\cup(1,\\infty)", True),
    ("\\boxed{\\{3, 2, 1\\}}", "\\{1,2,3\\}", True),
    ("\\boxed{3, -2}", "-2, 3", True),
    ("\\boxed{x=-2 \\text{ or } x=3}", "-2, 3", True),
    ("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "(3,\\frac{\\pi}{2})", True),
    ("\\boxed{\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}", True),
    ("\\boxed{(x+1)^2}", "x^2+2x+1", True),
    ("\\boxed{x = 3}", "3", True),
    # text answers
    ("\\boxed{\\text{(B)}}", "B", True),
    ("\\boxed{\\text{even}}", "\\text{even}", True),
    ("\\boxed{\\text{Monday}}", "\\text{Monday}", True),
    # where the answer sits: the forms the paper's models produce
    ("<think>\nmaybe \\boxed{3}? no.\n</think>\nSo the answer is \\boxed{4}.", "4", True),
    ("Final Answer: The final answer is $\\frac{3}{2}$. I hope it is correct.", "1.5", True),
    ("so the sum is 34.\nAnswer: 34", "34", True),
    ("**Answer:** $34$", "34", True),
    ("\\fbox{7}", "7", True),
    ("\\boxed 7.", "7", True),
    ("first \\boxed{3}, corrected: \\boxed{5}", "5", True),
    ("\\boxed{5}, and the final \\boxed{6", "5", True),  # the last box was cut off by the length limit
    ("\\boxed{10}", "\\boxed{10}", True),  # a ground truth written with its box
    ("\\boxed{3}", ["2", "3"], True),  # any of several accepted answers
    # near misses
    ("\\boxed{43}", "42", False),
    ("\\boxed{-3}", "3", False),
    ("\\boxed{\\frac{1}{3}}", "0.333", False),
    ("\\boxed{4.49}", "4.5", False),
    ("\\boxed{32, 349}", "32349", False),  # comma and blank: a list of two numbers
    ("\\boxed{32, 349}", "32,\\!349", False),
    ("\\boxed{100,\\,200}", "100200", False),
    ("\\boxed{1,\\!2}", "12", False),  # a grouping comma needs three digits after it
    ("\\boxed{3{,}14}", "314", False),
    ("\\boxed{2\\,3}", "23", False),
    ("\\boxed{28 percent}", "0.28", False),  # 28% is graded as 28, as in math-verify's own table
    ("\\boxed{28 percent}", "27\\%", False),
    ("\\boxed{\\sqrt{3}/2}", "\\frac{1}{2}", False),
    ("\\boxed{60^\\circ}", "\\frac{\\pi}{3}", False),
    ("\\boxed{(1,2)}", "[1,2]", False),
    ("\\boxed{[1,2)}", "[1,2]", False),
    ("\\boxed{\\{1,2\\}}", "\\{1,2,3\\}", False),
    ("\\boxed{(3,2)}", "(2,3)", False),
    ("\\boxed{\\begin{pmatrix} 1 \\\\ 3 \\end{pmatrix}}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}", False),
    ("\\boxed{x^2+2x}", "x^2+2x+1", False),
    ("\\boxed{\\text{(C)}}", "B", False),
    ("\\boxed{\\text{odd}}", "\\text{even}", False),
    ("first \\boxed{5}, corrected: \\boxed{6}", "5", False),  # only the last box counts
]


@pytest.fixture(scope="module")
def pool():
    verifiers = VerifierPool(max_workers=2)
    yield verifiers
    verifiers.close()


def test_answer_table_is_large_enough_and_balanced():
    assert len(ANSWER_TABLE) >= 40
    assert sum(correct for _, _, correct in ANSWER_TABLE) >= 15
    assert sum(not correct for _, _, correct in ANSWER_TABLE) >= 10


def test_answer_table(pool):
    wrong = []
    for response, truth, correct in ANSWER_TABLE:
        grade = grade_response(response, truth, pool=pool, timeout_s=20)
        expected_reason = "correct" if correct else "wrong_answer"
        if grade.correct != correct or grade.reason != expected_reason:
            wrong.append((response, truth, correct, grade))
    assert not wrong, "\n".join(map(repr, wrong))


@pytest.mark.parametrize(
    ("response", "truth", "reason"),
    [
        ("", "5", "empty_response"),
        ("  \n\t", "5", "empty_response"),
        (None, "5", "empty_response"),
        ("I think it is five", "5", "no_answer"),
        ("\\boxed{}", "5", "no_answer"),
        ("\\boxed{\\frac{1}{}", "5", "no_answer"),  # unbalanced braces
        (b"\xff\xfe\x80 no answer here", "5", "no_answer"),  # not UTF-8
        ("\\boxed{" * 100_000, "5", "no_answer"),  # huge and malformed
        ("\\boxed{" + "1" * 2000 + "}", "5", "answer_too_long"),
        ("\\boxed{5}", None, "missing_ground_truth"),
        ("\\boxed{5}", "", "missing_ground_truth"),
        ("\\boxed{5}", "$ $", "missing_ground_truth"),
    ],
)
def test_unusable_input_scores_zero_with_reason(response, truth, reason):
    result = compute_score("math500", response, truth, extra_info={})
    assert result["score"] == 0.0
    assert result["reason"] == reason


@pytest.mark.parametrize(
    ("response", "truth"),
    [
        ("\\boxed{\\frac{}{}\\sqrt[}", "5"),  # malformed LaTeX that does reach the parser
        ("\ud800 \\boxed{\ud800}", "5"),  # a lone surrogate: not encodable as UTF-8
        ("\\boxed{\\begin{array}{", "\\frac{1}{2}"),
        ("\\boxed{" + "(" * 500 + "}", "1"),
    ],
)
def test_malformed_input_never_raises(response, truth):
    result = compute_score("math500", response, truth, timeout_s=2)
    assert result["score"] == 0.0
    assert result["reason"] in {"wrong_answer", "no_answer", "verifier_error", "timeout"}


def test_bytes_response_is_decoded_and_graded():
    assert compute_score("math500", b"\xff\xfe \\boxed{5}", "5")["reason"] == "correct"


def test_format_score_pays_a_wrong_answer_in_the_last_box_only():
    # The paper's reward (format_score=0.1): correct 1, boxed but wrong 0.1, no box 0.
    responses = ["So \\boxed{2}.", "So \\boxed{3}.", "So it is 3."]
    results = [compute_score("aime24", response, "2", format_score=0.1) for response in responses]
    assert [r["score"] for r in results] == [1.0, 0.1, 0.0]
    assert [r["acc"] for r in results] == [1.0, 0.0, 0.0]
    # the last box counts: an earlier correct box does not lift a wrong final one
    assert compute_score("aime24", "\\boxed{2}, no: \\boxed{3}", "2", format_score=0.1)["score"] == 0.1
    # an unboxed "Answer:" line still scores when right, but earns no format score when wrong
    assert compute_score("aime24", "Answer: 2", "2", format_score=0.1)["score"] == 1.0
    assert compute_score("aime24", "Answer: 3", "2", format_score=0.1)["score"] == 0.0
    # the default has no format score
    assert compute_score("aime24", "So \\boxed{3}.", "2")["score"] == 0.0


@pytest.mark.parametrize("format_score", [-0.1, 1.0, "high"])
def test_a_format_score_that_is_not_below_a_correct_answer_is_refused(format_score):
    with pytest.raises(ValueError):
        compute_score("aime24", "\\boxed{3}", "2", format_score=format_score)


def test_result_keys_are_the_same_for_every_reason():
    # verl stacks each extra-info key across the batch: every result must carry the same keys.
    results = [
        compute_score("aime24", "\\boxed{5}", "5"),
        compute_score("aime24", "\\boxed{6}", "5"),
        compute_score("aime24", "", "5"),
        compute_score("aime24", "\\boxed{5}", None),
    ]
    assert {tuple(sorted(r)) for r in results} == {("acc", "pred", "reason", "score", "source")}
    assert [r["acc"] for r in results] == [1.0, 0.0, 0.0, 0.0]
    assert all(r["source"] == "aime24" for r in results)


def test_pathological_expression_times_out_from_worker_threads(pool):
    # verl calls reward functions from executor threads, where signal-based limits cannot fire.
    tower = "Clearly \\boxed{9^{9^{9^{9^{9}}}}}"
    # the ordinary comparison gets a generous limit: it may land on a fresh worker whose first
    # comparison, on a machine busy with other tests, takes longer than the towers' 1.5 s
    calls = [(tower, "7", 1.5), (tower, "8", 1.5), ("\\boxed{(x+1)^2}", "x^2+2x+1", 20)]
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=3) as threads:
        grades = list(threads.map(lambda call: grade_response(*call[:2], pool=pool, timeout_s=call[2]), calls))
    elapsed = time.monotonic() - start
    assert [g.reason for g in grades] == ["timeout", "timeout", "correct"]
    # two killed workers plus one fresh start-up (about a second of imports) on a busy machine
    assert elapsed < 15, elapsed
    # the pool replaces the killed workers
    assert grade_response("\\boxed{\\dfrac{2}{4}}", "\\frac12", pool=pool, timeout_s=20).correct


def test_a_verifier_killed_mid_comparison_costs_that_sample_a_zero_with_a_reason():
    # A worker that dies (the OOM killer, a segfault in sympy) must not cost the step.
    verifiers = VerifierPool(max_workers=1)
    tower = "\\boxed{9^{9^{9^{9^{9}}}}}"
    try:
        assert grade_response("\\boxed{\\dfrac{2}{4}}", "\\frac12", pool=verifiers, timeout_s=20).correct  # started
        with ThreadPoolExecutor(max_workers=1) as thread:
            grading = thread.submit(grade_response, tower, "7", pool=verifiers, timeout_s=60)
            deadline = time.monotonic() + 30
            while verifiers._idle.qsize():  # until the started worker has taken the request
                assert time.monotonic() < deadline
                time.sleep(0.05)
            time.sleep(0.5)
            for child in psutil.Process().children():
                if "verifier_worker" in " ".join(child.cmdline()):
                    child.kill()
            grade = grading.result(timeout=30)
        assert (grade.correct, grade.reason) == (False, "verifier_error")
        assert grade_response("\\boxed{\\dfrac{2}{4}}", "\\frac12", pool=verifiers, timeout_s=20).correct  # a fresh worker
    finally:
        verifiers.close()


def test_a_verifier_that_cannot_start_fails_loudly(monkeypatch):
    # A broken environment must stop the run, not score every response 0.
    monkeypatch.setattr(sys, "executable", "/bin/false")
    broken = VerifierPool(max_workers=1)
    monkeypatch.setattr(math_reward, "shared_pool", lambda: broken)
    with pytest.raises(VerifierUnavailable, match="did not start"):
        compute_score("math500", "\\boxed{0.5}", "\\frac12")
    # answers settled without math-verify still score
    assert compute_score("math500", "\\boxed{12}", "12")["score"] == 1.0


def test_verl_loads_the_reward_function_with_its_kwargs():
    from omegaconf import OmegaConf
    from verl.trainer.ppo.reward import get_custom_reward_fn

    config = OmegaConf.create(
        {
            "reward": {
                "custom_reward_function": {
                    "path": "pkg://sfpo_verl.paper.reward.math_reward",
                    "name": "compute_score",
                    "reward_kwargs": {"timeout_s": 1.5, "format_score": 0.1},
                }
            }
        }
    )
    reward_fn = get_custom_reward_fn(config)
    # the keyword call verl's NaiveRewardManager makes
    result = reward_fn(
        data_source="math500",
        solution_str="Hence \\boxed{9^{9^{9^{9^{9}}}}}",
        ground_truth="1",
        extra_info={"index": 0},
    )
    assert result["reason"] == "timeout"  # the 1.5 s from reward_kwargs reached the call
    assert result["score"] == 0.0  # an answer never verified earns no format score
    scores = [
        reward_fn(data_source="math500", solution_str=response, ground_truth="2", extra_info={})
        for response in ("\\boxed{2}", "\\boxed{3}", "2")
    ]
    assert [(r["score"], r["acc"]) for r in scores] == [(1.0, 1.0), (0.1, 0.0), (0.0, 0.0)]  # format_score too


def test_extraction_helpers():
    assert last_boxed_content("a \\boxed{\\frac{1}{2}} b \\boxed{x^{2}}") == "x^{2}"
    assert last_boxed_content("\\boxedfoo 5") is None
    assert extract_final_answer("no answer") is None
    assert extract_final_answer("The final answer is $7$. I hope it is correct.").method == "final_answer_is"
    assert normalize_answer("\\$1\\,000.") == "1000"
    assert normalize_answer("32,\\! 349") == normalize_answer("32 {,} 349") == "32,349"
    assert normalize_answer("100,\\,200") == "100, 200"
    assert normalize_answer("28\\text{ percent}") == normalize_answer("28 Percent") == "28"
    assert normalize_answer("28\\text{th percentile}") == "28\\text{th percentile}"  # not a percent
    assert normalize_answer("\\begin{pmatrix}1\\\\ 2\\end{pmatrix}") == "\\begin{pmatrix}1\\\\ 2\\end{pmatrix}"
