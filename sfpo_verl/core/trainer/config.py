"""The `algorithm` section of sfpo_trainer.yaml as dataclasses (strictly instantiable),
and the start-up validation of a whole run's config."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple, Optional

from omegaconf import DictConfig, OmegaConf
from verl.base_config import BaseConfig
from verl.trainer.config import AlgoConfig

from sfpo_verl.core.algorithm import ALPHA_SCHEDULES

logger = logging.getLogger(__name__)

# The folder of sfpo_trainer.yaml (verl's ppo_trainer plus the SFPO section), for hydra.
CONFIG_DIR = str(Path(__file__).parent / "config")

ALGORITHM_NAMES = ("sfpo", "grpo")
ANCHOR_DEVICES = ("param", "cpu")
SUPPORTED_STRATEGIES = ("fsdp", "fsdp2")


@dataclass
class EntropySwitchConfig(BaseConfig):
    """Entropy-triggered switch: see sfpo_verl.core.algorithm.EntropySwitch."""

    enable: bool = True
    window: int = 30
    threshold: float = 1.0
    two_sided: bool = False


@dataclass
class SFPOConfig(BaseConfig):
    """SFPO settings; defaults are the paper's (K=3, alpha=0.8, omega=30, tau=1.0)."""

    inner_steps: int = 3
    alpha: float = 0.8
    alpha_schedule: str = "constant"
    schedule_steps: Optional[int] = None
    anchor_device: str = "param"
    slow_correction: bool = True
    entropy_switch: EntropySwitchConfig = field(default_factory=EntropySwitchConfig)


@dataclass
class SFPOAlgoConfig(AlgoConfig):
    """verl's AlgoConfig plus the arm name and the SFPO section."""

    name: str = "sfpo"
    sfpo: SFPOConfig = field(default_factory=SFPOConfig)


class SFPOConfigError(ValueError):
    """A config value SFPO cannot run with; the message names the key, value and what is allowed."""


def _fail(key: str, value, allowed: str):
    raise SFPOConfigError(f"{key}={value!r} is not allowed: {allowed}")


def _is_bool(value) -> bool:
    return isinstance(value, bool)


def _is_int(value) -> bool:
    # YAML's true/false are Python bools, which are also ints: `inner_steps=true` is not K=1.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return _is_int(value) or isinstance(value, float)


def _is_name(value) -> bool:
    return isinstance(value, str)


def _is_int_or_null(value) -> bool:
    return value is None or _is_int(value)


def _is_positive_number_or_null(value) -> bool:
    return value is None or (_is_number(value) and value > 0)


class KeyRule(NamedTuple):
    """How one key is checked: the type its value must have, and what the error says is allowed."""

    has_type: Callable[[Any], bool]
    allowed: str


# The sections holding SFPO's keys; each must stay a section (Hydra lets `algorithm.sfpo=abc`
# replace one by a string).
SFPO_SECTIONS = ("algorithm", "algorithm.sfpo", "algorithm.sfpo.entropy_switch", "cluster_check")

# Every SFPO key: the type its value must have, and what is allowed (the message). All
# types are checked before any value is compared, so a mistyped value gets this message
# instead of a Python error from the comparison.
SFPO_KEYS = {
    "algorithm.name": KeyRule(_is_name, f"one of {', '.join(ALGORITHM_NAMES)}"),
    "algorithm.sfpo.inner_steps": KeyRule(_is_int, "an integer K >= 0 (0 turns SFPO off)"),
    "algorithm.sfpo.alpha": KeyRule(_is_number, "a number in [0, 1]"),
    "algorithm.sfpo.alpha_schedule": KeyRule(_is_name, f"one of {', '.join(ALPHA_SCHEDULES)}"),
    "algorithm.sfpo.schedule_steps": KeyRule(
        _is_int_or_null, "null, or an integer >= 1 (required when alpha_schedule is linear or cutoff)"
    ),
    "algorithm.sfpo.anchor_device": KeyRule(_is_name, f"one of {', '.join(ANCHOR_DEVICES)}"),
    "algorithm.sfpo.slow_correction": KeyRule(_is_bool, "true or false"),
    "algorithm.sfpo.entropy_switch.enable": KeyRule(_is_bool, "true or false"),
    "algorithm.sfpo.entropy_switch.window": KeyRule(_is_int, "an integer >= 2"),
    "algorithm.sfpo.entropy_switch.threshold": KeyRule(_is_number, "a number > 0"),
    "algorithm.sfpo.entropy_switch.two_sided": KeyRule(_is_bool, "true or false"),
    "cluster_check.enable": KeyRule(_is_bool, "true or false"),
    "cluster_check.placement_timeout_s": KeyRule(_is_positive_number_or_null, "a number of seconds > 0, or null (wait forever)"),
}


def validate_sfpo_config(config: DictConfig) -> None:
    """Check everything SFPO needs before Ray or any model starts; raise SFPOConfigError."""
    _check_sfpo_types(config)
    _check_sfpo_values(config.algorithm)
    _check_verl_settings(config)


def _refuse(key: str, value):
    _fail(key, value, SFPO_KEYS[key].allowed)


def _check_sfpo_types(config: DictConfig) -> None:
    """Every SFPO section is a section and every SFPO key has a value of its type."""
    for key in SFPO_SECTIONS:
        section = OmegaConf.select(config, key, throw_on_missing=False)
        if not isinstance(section, DictConfig):
            _fail(key, section, f"a section of keys, each set on its own ({key}.<key>=<value>)")
    for key, rule in SFPO_KEYS.items():
        value = OmegaConf.select(config, key, throw_on_missing=False)
        if not rule.has_type(value):
            _fail(key, value, rule.allowed)


def _check_sfpo_values(algo: DictConfig) -> None:
    """Ranges, choices and relations between keys (every value has its type by now)."""
    if algo.name not in ALGORITHM_NAMES:
        _refuse("algorithm.name", algo.name)
    sfpo = algo.sfpo
    if sfpo.inner_steps < 0:
        _refuse("algorithm.sfpo.inner_steps", sfpo.inner_steps)
    if not 0.0 <= sfpo.alpha <= 1.0:
        _refuse("algorithm.sfpo.alpha", sfpo.alpha)
    if sfpo.alpha_schedule not in ALPHA_SCHEDULES:
        _refuse("algorithm.sfpo.alpha_schedule", sfpo.alpha_schedule)
    if sfpo.alpha_schedule != "constant" and (sfpo.schedule_steps is None or sfpo.schedule_steps < 1):
        _fail(
            "algorithm.sfpo.schedule_steps",
            sfpo.schedule_steps,
            f"an integer >= 1 when algorithm.sfpo.alpha_schedule={sfpo.alpha_schedule}",
        )
    if sfpo.anchor_device not in ANCHOR_DEVICES:
        _refuse("algorithm.sfpo.anchor_device", sfpo.anchor_device)
    switch = sfpo.entropy_switch
    if switch.enable:
        if switch.window < 2:
            _refuse("algorithm.sfpo.entropy_switch.window", switch.window)
        if not switch.threshold > 0:
            _refuse("algorithm.sfpo.entropy_switch.threshold", switch.threshold)


# What SFPO runs only on verl 0.9.x: an override key (and its subkeys) or a key=value, and why.
V09_ONLY_OPTIONS = {
    "trainer.v1": "verl 0.8.x trains with the v0 RayPPOTrainer, which has no trainer.v1 section",
    "trainer.use_v1": "verl 0.8.x has only the v0 trainer",
    "trainer.device=cpu": (
        "verl 0.8.x has no platform registry (verl.plugin.platform) for SFPO's CPU platform, and its "
        "workers ask Ray for 'NPU' devices when no CUDA GPU is present"
    ),
    "actor_rollout_ref.rollout.name=hf": (
        "the hf CPU rollout is registered through verl 0.9.x's verl.plugins entry point, which 0.8.x lacks"
    ),
}


def v09_only_options(overrides: list[str], config: DictConfig | None = None) -> list[str]:
    """One line per command-line override (or, with `config`, config value) that needs verl 0.9.x."""
    from sfpo_verl.core.verl_seams import installed_verl_version

    found = {}
    settings = [o.lstrip("+~") for o in overrides]
    if config is not None:
        for option in V09_ONLY_OPTIONS:
            key, _, value = option.partition("=")
            if value and str(OmegaConf.select(config, key, throw_on_missing=False)) == value:
                settings.append(option)
    for setting in settings:
        key, _, value = setting.partition("=")
        for option, why in V09_ONLY_OPTIONS.items():
            option_key, _, option_value = option.partition("=")
            if option_value and f"{key}={value}" != option:
                continue
            if key == option_key or key.startswith(option_key + "."):
                found.setdefault(option if option_value else key, why)
    return [f"{name} needs verl 0.9.x (verl {installed_verl_version()} is installed: {why})" for name, why in found.items()]


def _check_verl_settings(config: DictConfig) -> None:
    """The verl settings SFPO's update cannot work under."""
    from sfpo_verl.core.verl_seams import uses_v0_trainer

    if uses_v0_trainer():
        problems = v09_only_options([], config)
        if problems:
            raise SFPOConfigError("; ".join(problems))
    else:
        if not config.trainer.get("use_v1", True):
            _fail(
                "trainer.use_v1",
                config.trainer.use_v1,
                "true only: SFPO hooks verl's v1 trainer; the legacy trainer (main_ppo_v0) is not supported",
            )
        if config.trainer.v1.trainer_mode != "sync":
            _fail(
                "trainer.v1.trainer_mode",
                config.trainer.v1.trainer_mode,
                "sync only: SFPO reuses one rollout batch on-policy; async modes are not supported",
            )
    strategy = config.actor_rollout_ref.actor.strategy
    if strategy not in SUPPORTED_STRATEGIES:
        _fail(
            "actor_rollout_ref.actor.strategy",
            strategy,
            f"one of {', '.join(SUPPORTED_STRATEGIES)}: the reposition edits fp32 local shards in place; "
            "Megatron keeps its fp32 master weights inside the optimizer, so SFPO would silently act "
            "on the wrong copy",
        )
    adv_estimator = config.algorithm.adv_estimator
    if adv_estimator != "grpo":
        logger.warning(
            "algorithm.adv_estimator=%s: SFPO was defined and evaluated on top of GRPO; the slow-fast "
            "update still applies to this estimator's actor update, but the paper's results do not.",
            adv_estimator,
        )
