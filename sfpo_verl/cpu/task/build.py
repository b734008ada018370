"""Build the embedded default task into a folder: tokenizer + briefly pre-trained tiny Qwen2
(model/), verl parquet files (data/), and task.json (settings and starting accuracy).

    python -m sfpo_verl.cpu.task.build --out runs/task

Does nothing when the folder already holds a task built with the same settings.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from sfpo_verl.cpu.task.arithmetic import all_problems, write_datasets
from sfpo_verl.cpu.task.model import ModelSize, build_model, pretrain, sampled_accuracy
from sfpo_verl.cpu.task.tokenizer import build_tokenizer


@dataclass(frozen=True)
class TaskSettings:
    max_operand: int = 9
    # Fraction of pre-training answers replaced by random numbers: sets the starting
    # sampled (temperature 1) accuracy to roughly 1 - label_noise.
    label_noise: float = 0.5
    # Pre-training stops once the greedy accuracy (the model's most likely answer) reaches this.
    target_greedy_accuracy: float = 0.9
    max_pretrain_seconds: float = 180.0
    seed: int = 0
    model: ModelSize = ModelSize()


@dataclass(frozen=True)
class TaskPaths:
    root: Path

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def train(self) -> Path:
        return self.root / "data" / "train.parquet"

    @property
    def val(self) -> Path:
        return self.root / "data" / "val.parquet"

    @property
    def manifest(self) -> Path:
        return self.root / "task.json"


def build_task(out: Path, settings: TaskSettings = TaskSettings(), log=print) -> dict:
    """Build (or reuse) the task in `out`; returns the manifest (settings, starting accuracy)."""
    paths = TaskPaths(Path(out))
    wanted = asdict(settings)
    if paths.manifest.exists() and paths.train.exists() and (paths.model / "config.json").exists():
        manifest = json.loads(paths.manifest.read_text())
        if manifest.get("settings") == wanted:
            log(f"[task] reusing {paths.root} (starting accuracy {manifest['start_accuracy']:.3f})")
            return manifest
    # One thread: the machine's cores may be shared, and oversubscribed torch threads
    # spin-wait (a 2-thread step ran 15x slower than a 1-thread one under contention).
    torch.set_num_threads(1)
    start = time.time()
    tokenizer = build_tokenizer()
    model = build_model(tokenizer, settings.model, seed=settings.seed)
    problems = all_problems(settings.max_operand)
    log(f"[task] pre-training a {sum(p.numel() for p in model.parameters()):,}-parameter Qwen2 on "
        f"{len(problems)} problems ({settings.label_noise:.0%} noisy answers) until greedy accuracy >= "
        f"{settings.target_greedy_accuracy}")
    greedy = pretrain(model, tokenizer, problems, problems, settings.target_greedy_accuracy,
                      settings.label_noise, settings.max_pretrain_seconds, seed=settings.seed, log=log)
    # The rollout setting: temperature 1, averaged over 4 samples per problem.
    start_accuracy = sampled_accuracy(model.eval(), tokenizer, problems * 4, seed=settings.seed + 1)
    model.save_pretrained(paths.model)
    tokenizer.save_pretrained(paths.model)
    write_datasets(paths.train.parent, settings.max_operand, seed=settings.seed)
    manifest = {
        "settings": wanted,
        "start_accuracy": start_accuracy,
        "start_greedy_accuracy": greedy,
        "build_seconds": round(time.time() - start, 1),
        "model": str(paths.model),
        "train_files": str(paths.train),
        "val_files": str(paths.val),
    }
    paths.manifest.write_text(json.dumps(manifest, indent=2))
    log(f"[task] built {paths.root} in {manifest['build_seconds']}s, starting accuracy {start_accuracy:.3f}")
    return manifest


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="folder to build the task into")
    defaults = TaskSettings()
    parser.add_argument("--max-operand", type=int, default=defaults.max_operand)
    parser.add_argument("--label-noise", type=float, default=defaults.label_noise)
    parser.add_argument("--target-greedy-accuracy", type=float, default=defaults.target_greedy_accuracy)
    parser.add_argument("--max-pretrain-seconds", type=float, default=defaults.max_pretrain_seconds)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    args = parser.parse_args(argv)
    build_task(args.out, TaskSettings(args.max_operand, args.label_noise, args.target_greedy_accuracy,
                                      args.max_pretrain_seconds, args.seed))


if __name__ == "__main__":
    main()
