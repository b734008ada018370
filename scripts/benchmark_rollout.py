"""Benchmark: the `hf` rollout server against a plain batched `model.generate`, and validation cost.

On the quickstart's model and settings (the tiny Qwen2 of the CPU task, 16 prompts x 8
samples, at most 11 new tokens, temperature 1), it times, interleaved in one process:

- the hf rollout server (`HFRolloutServer.generate`, one call per sample, all in flight at
  once, as verl's agent loop sends them): its request batching and per-sample seeded sampling;
- one batched `model.generate` call of the same model on the same 128 sequences.

Their throughput ratio shows what the server's batching and sampling cost over the model.
With `--validation` (default on) it also launches the real trainer for one step
(`python -m sfpo_verl.main`, quickstart settings, validation before and after the step) and
reports verl's `timing_s/testing` per 100 validation samples: agent loop, server, reward
loop, TransferQueue and verl's validation metrics together.

    python scripts/benchmark_rollout.py                     # prints a table
    python scripts/benchmark_rollout.py --json rows.json    # also writes the rows
    python scripts/benchmark_rollout.py --repeats 9 --no-validation

Times are medians over --repeats; on a shared machine the ratios are the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from sfpo_verl.cpu.quickstart.run import DEFAULT_CONFIG, arm_overrides, read_config
from sfpo_verl.cpu.settings import merge_overrides
from sfpo_verl.cpu.task.build import TaskPaths, TaskSettings, build_task

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def quickstart_settings(config_path: Path) -> tuple[dict, dict]:
    """The quickstart yaml (`read_config`) and its verl values (key -> value, without Hydra's '+')."""
    config = read_config(config_path)
    return config, {key.lstrip("+"): value for key, value in config["verl"].items()}


def prompts_of(task: TaskPaths, tokenizer, problems: int) -> list[list[int]]:
    """Token ids of the first `problems` training prompts, chat template applied as verl does."""
    rows = pd.read_parquet(task.train).head(problems)
    return [
        list(tokenizer.apply_chat_template(list(row["prompt"]), add_generation_prompt=True, tokenize=True,
                                           return_dict=True)["input_ids"])
        for _, row in rows.iterrows()
    ]


def make_server(task: TaskPaths, values: dict):
    from verl.workers.config import HFModelConfig, RolloutConfig

    from sfpo_verl.cpu.rollout.server import HFRolloutServer

    rollout = RolloutConfig(
        name="hf",
        dtype=values["actor_rollout_ref.rollout.dtype"],
        prompt_length=int(values["data.max_prompt_length"]),
        response_length=int(values["data.max_response_length"]),
        seed=int(values["actor_rollout_ref.rollout.seed"]),
    )
    attn = values["actor_rollout_ref.model.override_config.attn_implementation"]
    model = HFModelConfig(path=str(task.model), override_config={"attn_implementation": attn})
    return HFRolloutServer(rollout, model, replica_rank=0)


def time_server(server, prompts: list[list[int]], samples: int, max_tokens: int) -> tuple[float, int]:
    """(seconds, new tokens) for every prompt x sample requested at once."""
    params = {"temperature": 1.0, "top_p": 1.0, "top_k": -1, "repetition_penalty": 1.0, "logprobs": True,
              "max_tokens": max_tokens}

    async def one_step():
        calls = [server.generate(p, dict(params), request_id=f"{i}-{s}") for i, p in enumerate(prompts)
                 for s in range(samples)]
        return await asyncio.gather(*calls)

    start = time.perf_counter()
    outputs = asyncio.run(one_step())
    seconds = time.perf_counter() - start
    server._batcher = None  # the batcher task belonged to the finished event loop
    return seconds, sum(len(o.token_ids) for o in outputs)


def time_generate(model, tokenizer, prompts: list[list[int]], samples: int, max_tokens: int) -> tuple[float, int]:
    """(seconds, new tokens) of one batched `model.generate` over prompt x sample sequences."""
    rows = [p for p in prompts for _ in range(samples)]
    width = max(len(p) for p in rows)
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in rows])
    attention_mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in rows])
    start = time.perf_counter()
    with torch.no_grad():
        out = model.generate(input_ids=input_ids, attention_mask=attention_mask, do_sample=True, temperature=1.0,
                             top_k=0, top_p=1.0, max_new_tokens=max_tokens, pad_token_id=pad)
    seconds = time.perf_counter() - start
    return seconds, sum(_tokens_up_to_eos(row.tolist(), tokenizer.eos_token_id) for row in out[:, width:])


def _tokens_up_to_eos(tokens: list[int], eos: int) -> int:
    """New tokens of one row, its EOS included (generate pads the rows that finished early)."""
    return tokens.index(eos) + 1 if eos in tokens else len(tokens)


def validation_seconds_per_100(config_path: Path, task: TaskPaths, workdir: Path) -> tuple[float, int]:
    """verl's median `timing_s/testing` per 100 samples over a one-step run's two validations."""
    config, values = quickstart_settings(config_path)
    base = merge_overrides(config["verl"], ["trainer.total_training_steps=1", "trainer.val_before_train=true",
                                           "trainer.test_freq=1"])
    overrides = arm_overrides(base, "grpo", task, workdir / "grpo")
    metrics = workdir / "metrics.jsonl"
    env = {"VERL_FILE_LOGGER_PATH": str(metrics), "RAY_TMPDIR": tempfile.mkdtemp(prefix="sfpo-ray-")}
    log = workdir / "train.log"
    with open(log, "w") as out:
        result = subprocess.run([sys.executable, "-m", "sfpo_verl.main", *overrides], stdout=out,
                                stderr=subprocess.STDOUT, env={**os.environ, **env}, cwd=PROJECT_ROOT)
    if result.returncode != 0:
        raise SystemExit(f"benchmark_rollout: the validation run failed (exit {result.returncode}); see {log}")
    records = [json.loads(line)["data"] for line in metrics.read_text().splitlines()]
    testing = [r["timing_s/testing"] for r in records if "timing_s/testing" in r]
    samples = len(pd.read_parquet(task.val)) * int(values["actor_rollout_ref.rollout.val_kwargs.n"])
    return statistics.median(testing) / samples * 100.0, samples


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="quickstart yaml (default: %(default)s)")
    parser.add_argument("--task-dir", type=Path, default=PROJECT_ROOT / "runs/quickstart/task",
                        help="the CPU task, built here if absent (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats per side (default 5)")
    parser.add_argument("--validation", action=argparse.BooleanOptionalAction, default=True,
                        help="also time verl's validation in a one-step trainer run (about a minute)")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats {args.repeats}: at least 1")
    if not args.config.is_file():
        parser.error(f"--config {args.config}: no such file")

    torch.set_num_threads(1)  # as in a Ray worker of a CPU run (OMP_NUM_THREADS=1)
    config, values = quickstart_settings(args.config)
    build_task(args.task_dir, TaskSettings(**config["task"]))
    task = TaskPaths(args.task_dir)
    prompts_per_step = int(values["data.train_batch_size"])
    samples = int(values["actor_rollout_ref.rollout.n"])
    max_tokens = int(values["data.max_response_length"])

    server = make_server(task, values)
    tokenizer = server.model_config.tokenizer
    model = server.generator.model
    prompts = prompts_of(task, tokenizer, prompts_per_step)
    sequences = prompts_per_step * samples
    time_server(server, prompts, samples, max_tokens)  # warm-up both sides
    time_generate(model, tokenizer, prompts, samples, max_tokens)
    hf, plain = [], []
    for _ in range(args.repeats):
        hf.append(time_server(server, prompts, samples, max_tokens))
        plain.append(time_generate(model, tokenizer, prompts, samples, max_tokens))
    hf_s, hf_tokens = statistics.median(s for s, _ in hf), statistics.median(t for _, t in hf)
    gen_s, gen_tokens = statistics.median(s for s, _ in plain), statistics.median(t for _, t in plain)
    row = {
        "sequences": sequences,
        "max_new_tokens": max_tokens,
        "repeats": args.repeats,
        "hf_seconds": round(hf_s, 4),
        "hf_samples_per_s": round(sequences / hf_s, 1),
        "hf_tokens_per_s": round(hf_tokens / hf_s, 1),
        "generate_seconds": round(gen_s, 4),
        "generate_samples_per_s": round(sequences / gen_s, 1),
        "generate_tokens_per_s": round(gen_tokens / gen_s, 1),
        "hf_over_generate_seconds": round(hf_s / gen_s, 3),
    }
    if args.validation:
        with tempfile.TemporaryDirectory(prefix="sfpo-bench-val-") as workdir:
            row["val_seconds_per_100"], row["val_samples"] = validation_seconds_per_100(args.config, task, Path(workdir))
            row["val_seconds_per_100"] = round(row["val_seconds_per_100"], 3)
    for key, value in row.items():
        print(f"{key:>26}: {value}")
    if args.json:
        args.json.write_text(json.dumps([row], indent=2) + "\n")
        print(f"rows written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
