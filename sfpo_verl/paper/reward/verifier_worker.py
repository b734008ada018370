"""A subprocess that compares answers with math-verify; started and killed by VerifierPool.

math-verify's own time limit is `signal.alarm`, which only works in a main thread, while
verl calls reward functions from executor threads; and a huge expression can block inside
sympy's C code where no Python-level timer can interrupt it. So the comparison runs here,
in a process the caller can kill when its time is up.

Protocol (one JSON object per line): after importing math-verify the worker writes
{"ready": true}; then for each request {"gold": str, "pred": str, "cpu_budget_s": float}
on stdin it writes {"match": bool} or {"error": str} on stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
from functools import lru_cache


def _limit_resources(memory_limit_mb: int) -> None:
    """No core files when the CPU limit kills us; a memory ceiling so a blow-up cannot take the node."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if memory_limit_mb > 0:
        limit = memory_limit_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _set_cpu_budget(seconds: float) -> None:
    """Let the kernel end this process (SIGXCPU) once the request has used `seconds` of CPU.

    The parent kills a worker that overruns its wall-clock limit; this is the backstop for a
    worker whose parent died mid-request (it would otherwise compute forever).
    """
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = int(usage.ru_utime + usage.ru_stime + seconds) + 1
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--memory-limit-mb", type=int, required=True)
    args = parser.parse_args()
    _limit_resources(args.memory_limit_mb)

    # The protocol owns the real stdout; anything a library prints goes to stderr instead.
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    from math_verify import parse, verify

    # Timeouts are this process's job (see the module docstring); silence the warning about it.
    logging.getLogger("math_verify").setLevel(logging.ERROR)

    @lru_cache(maxsize=4096)
    def parse_gold(gold: str):
        # A prompt's n responses share one ground truth: parse it once.
        return parse(f"\\boxed{{{gold}}}", parsing_timeout=None)

    def answers_match(gold: str, pred: str) -> bool:
        gold_parsed = parse_gold(gold)
        pred_parsed = parse(f"\\boxed{{{pred}}}", parsing_timeout=None)
        if not gold_parsed or not pred_parsed:
            return False
        return bool(verify(gold_parsed, pred_parsed, timeout_seconds=None))

    replies.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        _set_cpu_budget(request["cpu_budget_s"])
        try:
            reply = {"match": answers_match(request["gold"], request["pred"])}
        except Exception as error:  # MemoryError and RecursionError included: report, keep serving
            # Only the type: str() of a sympy error can itself hang on a huge expression.
            reply = {"error": type(error).__name__}
        replies.write(json.dumps(reply) + "\n")


if __name__ == "__main__":
    main()
