"""Reward for the arithmetic task, plugged in with verl's custom reward function mechanism:

    reward.custom_reward_function.path=<this file> reward.custom_reward_function.name=compute_score
"""

from __future__ import annotations

from sfpo_verl.cpu.task.arithmetic import parse_answer


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs) -> float:
    """1.0 when the response is exactly the right number (surrounding blanks allowed), else 0.0.

    Anything malformed (empty, extra text, no number, not a string) scores 0.0, never raises.
    """
    if not isinstance(solution_str, str):
        return 0.0
    stated = parse_answer(solution_str)
    try:
        return 1.0 if stated is not None and stated == int(str(ground_truth).strip()) else 0.0
    except ValueError:
        return 0.0
