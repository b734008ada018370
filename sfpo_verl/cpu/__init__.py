"""The CPU stack: verl on a laptop CPU (`trainer.device=cpu`). A CPU platform and FSDP2 engine
for verl, the `hf` rollout backend, the tiny arithmetic task and model built locally, and the
GRPO-vs-SFPO quickstart."""
