"""The `algorithm` section of sfpo_trainer.yaml as dataclasses (strictly instantiable),
and the start-up validation of a whole run's config."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Optional

from omegaconf import DictConfig
from verl.base_config import BaseConfig
from verl.trainer.config import AlgoConfig

from sfpo_verl.algorithm import ALPHA_SCHEDULES

logger = logging.getLogger(__name__)

ALGORITHM_NAMES = ("sfpo", "grpo")
ANCHOR_DEVICES = ("param", "cpu")
SUPPORTED_STRATEGIES = ("fsdp", "fsdp2")


@dataclass
class EntropySwitchConfig(BaseConfig):
    """Entropy-triggered switch: see sfpo_verl.algorithm.EntropySwitch."""

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


def validate_sfpo_config(config: DictConfig) -> None:
    """Check everything SFPO needs before Ray or any model starts; raise SFPOConfigError."""
    algo = config.algorithm
    name = algo.get("name", None)
    if name not in ALGORITHM_NAMES:
        _fail("algorithm.name", name, f"one of {', '.join(ALGORITHM_NAMES)}")
    sfpo = algo.sfpo
    if not isinstance(sfpo.inner_steps, int) or sfpo.inner_steps < 0:
        _fail("algorithm.sfpo.inner_steps", sfpo.inner_steps, "an integer K >= 0 (0 turns SFPO off)")
    if not 0.0 <= float(sfpo.alpha) <= 1.0:
        _fail("algorithm.sfpo.alpha", sfpo.alpha, "a number in [0, 1]")
    if sfpo.alpha_schedule not in ALPHA_SCHEDULES:
        _fail("algorithm.sfpo.alpha_schedule", sfpo.alpha_schedule, f"one of {', '.join(ALPHA_SCHEDULES)}")
    if sfpo.alpha_schedule != "constant" and (sfpo.schedule_steps is None or sfpo.schedule_steps < 1):
        _fail(
            "algorithm.sfpo.schedule_steps",
            sfpo.schedule_steps,
            f"an integer >= 1 when algorithm.sfpo.alpha_schedule={sfpo.alpha_schedule}",
        )
    if sfpo.anchor_device not in ANCHOR_DEVICES:
        _fail("algorithm.sfpo.anchor_device", sfpo.anchor_device, f"one of {', '.join(ANCHOR_DEVICES)}")
    switch = sfpo.entropy_switch
    if switch.enable:
        if not isinstance(switch.window, int) or switch.window < 2:
            _fail("algorithm.sfpo.entropy_switch.window", switch.window, "an integer >= 2")
        if not float(switch.threshold) > 0:
            _fail("algorithm.sfpo.entropy_switch.threshold", switch.threshold, "a number > 0")

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
    if algo.adv_estimator != "grpo":
        logger.warning(
            "algorithm.adv_estimator=%s: SFPO was defined and evaluated on top of GRPO; the slow-fast "
            "update still applies to this estimator's actor update, but the paper's results do not.",
            algo.adv_estimator,
        )
