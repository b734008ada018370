"""The prompt every prepared row carries: the problem plus the instruction to box the answer.

This is verl's own math template (examples/data_preprocess/math_dataset.py); verl applies
the model's chat template on top at load time. The reward reads the last `\\boxed{}`.
"""

INSTRUCTION = "Let's think step by step and output the final answer within \\boxed{}."


def build_prompt(problem: str) -> list[dict[str, str]]:
    """The chat messages of one prompt (verl's `prompt` column)."""
    return [{"role": "user", "content": f"{problem} {INSTRUCTION}"}]
