"""The arms of a study (each a set of verl overrides) and the comparisons each grid declares.

`default`: GRPO vs SFPO at the paper's K=3, alpha=0.8. `ablations`: the paper's ablation grid,
K in {3, 7} x alpha in {0.2, 0.5, 0.8, 1.0} (alpha = 1 is "without reposition"), plus SFPO
without the slow correction. `epochs`: SFPO against compute-matched GRPO: SFPO with K fast
passes makes K+1 passes over a batch, and `grpo_e{K+1}` is stock GRPO (verl's own path) with
`ppo_epochs=K+1`, as many passes. `stepsize`: does SFPO without the slow correction win only
because it takes a smaller step? Both, at the task's learning rate and at a learning rate
matched to the step size (STEPSIZE_MATCHED_LR).

`comparisons` says which (arm, baseline) pairs a grid's report compares, and so which
baselines must run with an arm.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

BASELINE = "grpo"
LR = "actor_rollout_ref.actor.optim.lr"
STEPSIZE_BASE_LR = 3e-4  # the CPU task's learning rate (quickstart.yaml)
# The learning rate at which the no-slow arm moves the weights per step as far as SFPO does at
# STEPSIZE_BASE_LR. From the pilot (recipes/results/cpu_study_stepsize/pilot, steps 2-8 of one
# seed, scripts/step_displacement.py): at 3e-4 SFPO's step is 1.29-1.39x the no-slow arm's
# (median 1.31); Adam's step grows about linearly with the learning rate, so 3e-4 x 1.31 ~ 4e-4.
STEPSIZE_MATCHED_LR = 4e-4


def grpo_arm(epochs: int = 1) -> tuple[str, dict]:
    """Stock GRPO with `epochs` passes over each batch (verl's ppo_epochs)."""
    if epochs == 1:
        return BASELINE, {"algorithm.name": "grpo"}
    return f"grpo_e{epochs}", {"algorithm.name": "grpo", "actor_rollout_ref.actor.ppo_epochs": epochs}


def sfpo_arm(inner_steps: int, alpha: float, slow_correction: bool = True, lr: float | None = None) -> tuple[str, dict]:
    """SFPO with K=`inner_steps` fast passes; `lr` None keeps the run's learning rate.

    The entropy switch is off: once it fires SFPO takes plain one-pass GRPO steps, so an arm
    would make fewer optimizer passes than its compute-matched baseline and the comparison would
    mix the switch with the reposition (on the CPU task it fired at step 43 of 80)."""
    name = f"sfpo_k{inner_steps}_a{alpha}" + ("" if slow_correction else "_noslow")
    overrides = {
        "algorithm.name": "sfpo",
        "algorithm.sfpo.inner_steps": inner_steps,
        "algorithm.sfpo.alpha": alpha,
        "algorithm.sfpo.slow_correction": slow_correction,
        "algorithm.sfpo.entropy_switch.enable": False,
    }
    if lr is None:
        return name, overrides
    return f"{name}_lr{_short_float(lr)}", {**overrides, LR: lr}


def _short_float(value: float) -> str:
    """6e-4 -> "6e-4", 4.5e-4 -> "4.5e-4": the learning rate as it reads in an arm's name."""
    mantissa, exponent = f"{value:.6e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


Pairs = list[tuple[str, str]]


def compute_matched_pairs(arms: dict[str, dict]) -> Pairs:
    """Each SFPO arm with K fast passes against 1-epoch GRPO (always), against GRPO with K+1
    epochs and SFPO with the same K at alpha = 1 (when the grid has them), and, without the slow
    correction, against the same arm with it (when the grid has it)."""
    pairs = []
    for name, overrides in arms.items():
        if overrides["algorithm.name"] != "sfpo":
            continue
        k, alpha = overrides["algorithm.sfpo.inner_steps"], overrides["algorithm.sfpo.alpha"]
        optional = [grpo_arm(k + 1)[0], sfpo_arm(k, 1.0)[0]]
        if not overrides["algorithm.sfpo.slow_correction"]:
            optional.append(sfpo_arm(k, alpha)[0])
        pairs.append((name, BASELINE))
        pairs += [(name, baseline) for baseline in optional if baseline in arms and baseline != name]
    return pairs


def stepsize_pairs(arms: dict[str, dict]) -> Pairs:
    """Without against with the slow correction at the same learning rate and at the same step
    size (without it at the matched learning rate, with it at the base one), and each arm at the
    matched learning rate against itself at the base one."""
    pairs = []
    for name, overrides in arms.items():
        k, alpha, lr = overrides["algorithm.sfpo.inner_steps"], overrides["algorithm.sfpo.alpha"], overrides[LR]
        if not overrides["algorithm.sfpo.slow_correction"]:
            pairs.append((name, sfpo_arm(k, alpha, lr=lr)[0]))
            if lr == STEPSIZE_MATCHED_LR:
                pairs.append((name, sfpo_arm(k, alpha, lr=STEPSIZE_BASE_LR)[0]))
        if lr != STEPSIZE_BASE_LR:
            pairs.append((name, sfpo_arm(k, alpha, overrides["algorithm.sfpo.slow_correction"], STEPSIZE_BASE_LR)[0]))
    return pairs


@dataclass(frozen=True)
class Grid:
    arms: dict[str, dict]
    pairs: Callable[[dict[str, dict]], Pairs]


GRIDS = {
    "default": Grid(dict([grpo_arm(), sfpo_arm(3, 0.8)]), compute_matched_pairs),
    "ablations": Grid(
        dict([
            grpo_arm(),
            *(sfpo_arm(k, alpha) for k in (3, 7) for alpha in (0.2, 0.5, 0.8, 1.0)),
            sfpo_arm(3, 0.8, slow_correction=False),
        ]),
        compute_matched_pairs,
    ),
    "epochs": Grid(
        dict([grpo_arm(), grpo_arm(4), sfpo_arm(3, 0.8), grpo_arm(8),
              sfpo_arm(7, 0.2), sfpo_arm(7, 0.5), sfpo_arm(7, 1.0)]),
        compute_matched_pairs,
    ),
    "stepsize": Grid(
        dict(sfpo_arm(3, 0.8, slow, lr) for lr in (STEPSIZE_BASE_LR, STEPSIZE_MATCHED_LR) for slow in (True, False)),
        stepsize_pairs,
    ),
}


def _grid(name: str) -> Grid:
    if name not in GRIDS:
        raise ValueError(f"unknown grid {name!r}: choose one of {', '.join(GRIDS)}")
    return GRIDS[name]


def comparisons(grid: str, arms: list[str] | None = None) -> Pairs:
    """The grid's (arm, baseline) pairs, or those with both sides among `arms`."""
    pairs = _grid(grid).pairs(_grid(grid).arms)
    return [pair for pair in pairs if arms is None or set(pair) <= set(arms)]


def arms_of(grid: str, only: list[str] | None = None) -> dict[str, dict]:
    """The arms of `grid` (all, or those in `only` and every baseline their comparisons need),
    in the grid's order; ValueError naming what is unknown or a baseline the grid lacks."""
    arms = _grid(grid).arms
    unknown = [name for name in only or [] if name not in arms]
    if unknown:
        raise ValueError(f"unknown arm(s) {', '.join(unknown)} in grid {grid!r}: its arms are {', '.join(arms)}")
    wanted = set(arms if only is None else only)
    needed = [(arm, baseline) for arm, baseline in _grid(grid).pairs(arms) if arm in wanted]
    missing = [f"{arm} needs {baseline}" for arm, baseline in needed if baseline not in arms]
    if missing:
        raise ValueError(f"grid {grid!r} lacks baseline arm(s) its comparisons need: {'; '.join(missing)}")
    wanted |= {baseline for _, baseline in needed}
    return {name: overrides for name, overrides in arms.items() if name in wanted}
