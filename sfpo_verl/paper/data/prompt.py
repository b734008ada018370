"""The prompt every prepared row carries: the problem wrapped in a template that asks for the
answer in `\\boxed{}` (the reward reads the last box). One user message; verl applies the
model's chat template on top at load time.

Templates, by name:
- `paper`: the SFPO authors' wording, from every preprocessing script of their released
  code (trailing space included). The default: the paper's numbers were trained and
  evaluated with it.
- `verl`: verl's own math template (examples/data_preprocess/math_dataset.py).
"""

from __future__ import annotations

TEMPLATES = {
    "paper": (
        "Please solve the following math problem: {problem}. The assistant first thinks about the "
        "reasoning process step by step and then provides the user with the answer. Return the "
        "final answer in \\boxed{{}} tags, for example \\boxed{{1}}. Let's solve this step by step. "
    ),
    "verl": "{problem} Let's think step by step and output the final answer within \\boxed{{}}.",
}
DEFAULT_TEMPLATE = "paper"


def build_prompt(problem: str, template: str) -> list[dict[str, str]]:
    """The chat messages of one prompt (verl's `prompt` column); `template` names one of TEMPLATES."""
    return [{"role": "user", "content": TEMPLATES[template].format(problem=problem)}]
