"""Build the embedded default task into a folder: tokenizer + briefly pre-trained tiny Qwen2
(model/), verl parquet files (data/), and task.json (settings, starting accuracy on the
validation problems, and a digest of the weights).

    python -m sfpo_verl.cpu.task.build --out runs/task

Deterministic: the same settings give bit-identical weights (the same digest) on every run,
whatever the machine's load or the caller's torch thread count. Does nothing when the folder
already holds a task built with the same settings.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from sfpo_verl.cpu.task.arithmetic import split_problems, write_datasets
from sfpo_verl.cpu.task.model import ModelSize, build_model, pretrain, sampled_accuracy, weights_digest
from sfpo_verl.cpu.task.tokenizer import build_tokenizer


@dataclass(frozen=True)
class TaskSettings:
    max_operand: int = 9
    # Share of the problems held out for validation (never trained on, by pre-training or RL).
    val_fraction: float = 0.2
    # Fraction of pre-training answers replaced by random numbers: sets the starting
    # sampled (temperature 1) accuracy to roughly 1 - label_noise.
    label_noise: float = 0.6
    pretrain_steps: int = 2000
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
    # One thread also keeps the float reductions, hence the weights, the same on every call.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        manifest = _build(paths, settings, log)
    finally:
        torch.set_num_threads(threads)
    paths.manifest.write_text(json.dumps(manifest, indent=2))
    log(f"[task] built {paths.root} in {manifest['build_seconds']}s, starting accuracy "
        f"{manifest['start_accuracy']:.3f} on the validation problems")
    return manifest


def _build(paths: TaskPaths, settings: TaskSettings, log) -> dict:
    start = time.time()
    tokenizer = build_tokenizer()
    model = build_model(tokenizer, settings.model, seed=settings.seed)
    splits = split_problems(settings.max_operand, settings.val_fraction, seed=settings.seed)
    log(f"[task] pre-training a {sum(p.numel() for p in model.parameters()):,}-parameter Qwen2 for "
        f"{settings.pretrain_steps} steps on {len(splits['train'])} problems ({settings.label_noise:.0%} "
        f"noisy answers); {len(splits['val'])} more held out for validation")
    pretrain(model, tokenizer, splits["train"], settings.pretrain_steps, settings.label_noise,
             seed=settings.seed, log=log)
    model.eval()
    greedy = sampled_accuracy(model, tokenizer, splits["val"], temperature=0.0)
    # The validation setting: temperature 1, averaged over 4 samples per problem.
    start_accuracy = sampled_accuracy(model, tokenizer, splits["val"] * 4, seed=settings.seed + 1)
    model.save_pretrained(paths.model)
    tokenizer.save_pretrained(paths.model)
    write_datasets(paths.train.parent, splits)
    return {
        "settings": asdict(settings),
        "start_accuracy": start_accuracy,
        "start_greedy_accuracy": greedy,
        "weights_sha256": weights_digest(model),
        "build_seconds": round(time.time() - start, 1),
        "model": str(paths.model),
        "train_files": str(paths.train),
        "val_files": str(paths.val),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="folder to build the task into")
    defaults = TaskSettings()
    parser.add_argument("--max-operand", type=int, default=defaults.max_operand)
    parser.add_argument("--val-fraction", type=float, default=defaults.val_fraction)
    parser.add_argument("--label-noise", type=float, default=defaults.label_noise)
    parser.add_argument("--pretrain-steps", type=int, default=defaults.pretrain_steps)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    args = parser.parse_args(argv)
    build_task(args.out, TaskSettings(args.max_operand, args.val_fraction, args.label_noise,
                                      args.pretrain_steps, args.seed))


if __name__ == "__main__":
    main()
