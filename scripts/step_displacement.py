"""How far the actor's weights move per training step, read from a run's checkpoints:
||theta_s - theta_(s-1)|| for every pair of consecutive saved steps, beside the run's own
`sfpo/fast_displacement_norm` (||theta_K - theta_0|| of the fast passes) where it logged one.
Used to set the step-size study's matched learning rate (sfpo_verl/cpu/study/grid.py).

    python scripts/step_displacement.py RUN_DIR [RUN_DIR ...] [--json FILE]

RUN_DIR holds verl's `metrics.jsonl` and `checkpoints/global_step_N/actor/model_world_size_W_rank_R.pt`
(save every step: trainer.save_freq=1). The ranks' files hold disjoint shards, so their squared
differences add up. Every state-dict entry counts once: a tied embedding and LM head count
twice, so compare runs of the same model only.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

import torch

STEP_DIR = re.compile(r"global_step_(\d+)$")


def saved_steps(run_dir: Path) -> list[int]:
    steps = sorted(int(m.group(1)) for p in (run_dir / "checkpoints").glob("global_step_*")
                   if (m := STEP_DIR.search(p.name)) and any((p / "actor").glob("model_world_size_*_rank_*.pt")))
    return steps


def load_shards(run_dir: Path, step: int) -> list[dict[str, torch.Tensor]]:
    """The actor's model state dict of each rank at `step`, as fp32 local tensors."""
    files = sorted((run_dir / "checkpoints" / f"global_step_{step}" / "actor").glob("model_world_size_*_rank_*.pt"))
    shards = []
    for path in files:
        state = torch.load(path, map_location="cpu", weights_only=False)
        shards.append({k: (v.to_local() if hasattr(v, "to_local") else v).float() for k, v in state.items()})
    return shards


def distance(before: list[dict], after: list[dict]) -> float:
    squares = sum(((a[name] - b[name]) ** 2).sum().item() for b, a in zip(before, after, strict=True) for name in a)
    return squares**0.5


def fast_displacements(run_dir: Path) -> dict[int, float]:
    metrics = {}
    with open(run_dir / "metrics.jsonl") as lines:
        for line in lines:
            record = json.loads(line)
            if "sfpo/fast_displacement_norm" in record["data"]:
                metrics[record["step"]] = record["data"]["sfpo/fast_displacement_norm"]
    return metrics


def run_report(run_dir: Path) -> dict:
    steps = saved_steps(run_dir)
    if len(steps) < 2:
        raise ValueError(f"{run_dir}: {len(steps)} saved actor checkpoint(s); need two consecutive (trainer.save_freq=1)")
    fast = fast_displacements(run_dir)
    rows, previous = [], load_shards(run_dir, steps[0])
    for before, step in zip(steps, steps[1:]):
        current = load_shards(run_dir, step)
        if step == before + 1:
            rows.append({"step": step, "step_displacement": distance(previous, current),
                         "fast_displacement_norm": fast.get(step)})
        previous = current
    if not rows:
        raise ValueError(f"{run_dir}: no two consecutive steps saved (trainer.save_freq=1)")
    return {"run": str(run_dir), "steps": rows,
            "median_step_displacement": statistics.median(r["step_displacement"] for r in rows)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", nargs="+", type=Path)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    try:
        reports = [run_report(run_dir) for run_dir in args.run_dirs]
    except (OSError, ValueError) as error:
        parser.exit(2, f"error: {error}\n")
    for report in reports:
        print(report["run"])
        for row in report["steps"]:
            fast = row["fast_displacement_norm"]
            ratio = f"   step / fast {row['step_displacement'] / fast:.3f}" if fast else ""
            print(f"  step {row['step']:3d}: ||theta_s - theta_s-1|| {row['step_displacement']:.4f}"
                  + (f"   fast_displacement_norm {fast:.4f}{ratio}" if fast else ""))
        print(f"  median {report['median_step_displacement']:.4f}")
    if args.json:
        args.json.write_text(json.dumps(reports, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
