"""The arms of a study: GRPO against SFPO settings, each a set of verl overrides.

`default`: GRPO vs SFPO at the paper's K=3, alpha=0.8. `ablations`: the paper's ablation grid,
K in {3, 7} x alpha in {0.2, 0.5, 0.8, 1.0} (alpha = 1 is "without reposition"), plus SFPO
without the slow correction, against the same GRPO baseline.
"""

from __future__ import annotations

BASELINE = "grpo"


def sfpo_arm(inner_steps: int, alpha: float, slow_correction: bool = True) -> tuple[str, dict]:
    name = f"sfpo_k{inner_steps}_a{alpha}" + ("" if slow_correction else "_noslow")
    return name, {
        "algorithm.name": "sfpo",
        "algorithm.sfpo.inner_steps": inner_steps,
        "algorithm.sfpo.alpha": alpha,
        "algorithm.sfpo.slow_correction": slow_correction,
    }


def _grid(*sfpo_arms: tuple[str, dict]) -> dict[str, dict]:
    return {BASELINE: {"algorithm.name": "grpo"}, **dict(sfpo_arms)}


GRIDS = {
    "default": _grid(sfpo_arm(3, 0.8)),
    "ablations": _grid(
        *(sfpo_arm(k, alpha) for k in (3, 7) for alpha in (0.2, 0.5, 0.8, 1.0)),
        sfpo_arm(3, 0.8, slow_correction=False),
    ),
}


def arms_of(grid: str, only: list[str] | None = None) -> dict[str, dict]:
    """The arms of `grid` (all, or those in `only`; the baseline always runs), or ValueError
    naming what is unknown."""
    if grid not in GRIDS:
        raise ValueError(f"unknown grid {grid!r}: choose one of {', '.join(GRIDS)}")
    arms = GRIDS[grid]
    if only is None:
        return dict(arms)
    unknown = [name for name in only if name not in arms]
    if unknown:
        raise ValueError(f"unknown arm(s) {', '.join(unknown)} in grid {grid!r}: its arms are {', '.join(arms)}")
    return {name: overrides for name, overrides in arms.items() if name == BASELINE or name in only}
