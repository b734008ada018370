"""Math reward on math-verify, for verl's custom reward function (see math_reward)."""

from sfpo_verl.paper.reward.math_reward import compute_score, grade_response

__all__ = ["compute_score", "grade_response"]
