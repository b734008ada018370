"""The CPU platform's verl settings, read from their one source, sfpo_verl/cpu/platform/cpu_settings.yaml,
and settings written as Hydra overrides.

`cpu_overrides()` is what a run needs on the CPU (`trainer.device=cpu`, the `hf` rollout, fp32,
eager attention, ...), key -> value; the quickstart, the study and the smoke run put their own
run settings over it (sfpo_verl/cpu/quickstart/run.py `read_config`), the in-process actor takes
its actor and model keys (sfpo_verl/cpu/local_actor.py), and the CPU tests start from it.
"""

from __future__ import annotations

from pathlib import Path

import yaml

CPU_SETTINGS = Path(__file__).parent / "platform" / "cpu_settings.yaml"
# The file's groups, in order: what only the CPU needs, and what sizes a run for a small machine.
GROUPS = ("cpu_only", "small_machine")


def cpu_overrides(group: str | None = None) -> dict:
    """The CPU settings, key -> value in the file's order (a key keeps its leading "+"): every
    group's, or one group's."""
    settings = yaml.safe_load(CPU_SETTINGS.read_text())
    return {key: value for name in ((group,) if group else GROUPS) for key, value in settings[name].items()}


def cpu_only_keys() -> tuple[str, ...]:
    """The keys a CUDA run leaves to verl's defaults."""
    return tuple(cpu_overrides("cpu_only"))


def hydra_value(value) -> str:
    """A yaml value written as a Hydra override value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {hydra_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def merge_overrides(defaults: dict, command_line: list[str]) -> list[str]:
    """Hydra overrides: the yaml's, each replaced by a command-line one for the same key,
    then the remaining command-line ones in their order."""
    given = {}
    for override in command_line:
        if "=" not in override:
            raise ValueError(f"Not a verl override (key=value): {override!r}")
        key, value = override.split("=", 1)
        given[key.lstrip("+~")] = override
    merged = []
    for key, value in defaults.items():
        merged.append(given.pop(key.lstrip("+"), f"{key}={hydra_value(value)}"))
    return merged + list(given.values())
