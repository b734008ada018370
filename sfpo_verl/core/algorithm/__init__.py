"""SFPO's algorithmic pieces, free of verl: the anchor and reposition, the alpha
schedules, the entropy switch, and the per-step controller that combines them."""

from sfpo_verl.core.algorithm.anchor import ParameterAnchor
from sfpo_verl.core.algorithm.controller import SFPOController
from sfpo_verl.core.algorithm.entropy_switch import EntropySwitch
from sfpo_verl.core.algorithm.schedule import ALPHA_SCHEDULES, AlphaSchedule

__all__ = ["ALPHA_SCHEDULES", "AlphaSchedule", "EntropySwitch", "ParameterAnchor", "SFPOController"]
