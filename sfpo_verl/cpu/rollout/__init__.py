"""`hf`: a CPU rollout backend for verl's server-mode agent loop (Hugging Face transformers).

Select it with ``actor_rollout_ref.rollout.name=hf``. Pieces, in the order verl meets them:
registration.py (names it in verl's registries), replica.py (launches a server per
replica), server.py (batched token-in/token-out generation, in-place weight loads),
generator.py (the decode loop), adapter.py (trainer side: ships weights after each step).
"""

from sfpo_verl.cpu.rollout.registration import ROLLOUT_NAME, register, registered

__all__ = ["ROLLOUT_NAME", "register", "registered"]
