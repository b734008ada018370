"""Benchmark: the SFPO step against verl's GRPO update pass, side by side in one run.

For each model it times, interleaved on the same worker and batch, a GRPO update pass
(alpha = 0: verl's own pass) and an SFPO step (K fast passes + reposition + slow pass),
and prints their ratio against the ideal (K+1) x GRPO, the snapshot + reposition share of
the SFPO step, and the anchor's bytes against the rank's local parameter bytes.

    python scripts/benchmark_update.py                          # CPU: tiny and ~57M-parameter Qwen2, K=3
    python scripts/benchmark_update.py --sizes tiny --repeats 10
    python scripts/benchmark_update.py --device cuda            # Qwen2.5-0.5B and -1.5B shapes, random weights
    python scripts/benchmark_update.py --json rows.json         # also write the rows as JSON
    SFPO_MALLOC_TUNING=0 python scripts/benchmark_update.py     # CPU, glibc malloc's defaults

verl's real FSDP2 engine, one rank. CPU: fp32, gloo. CUDA: verl's defaults (bf16 compute
over fp32 master weights), and the SFPO step is also timed with the anchor in host memory
(`anchor_device=cpu`), with each anchor's accelerator bytes. Times are medians over
--repeats; absolute times on shared machines are noisy, the ratios are the figures. Both
wall-clock and this process's CPU time (all its threads) are reported: on a machine shared
with other jobs the CPU-time ratio is the steadier one (on CUDA, wall-clock is the figure).
On the CPU the process keeps freed memory as CPU runs do (sfpo_verl/cpu/platform/allocator.py);
each row's malloc_settings says what was applied.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

# CPU mode must be chosen before verl is imported (verl resolves its platform on import).
if "--device" not in sys.argv or sys.argv[sys.argv.index("--device") + 1 :][:1] != ["cuda"]:
    os.environ.setdefault("VERL_PLATFORM", "cpu")

from verl.utils import tensordict_utils as tu  # noqa: E402

from sfpo_verl.cpu.local_actor import (  # noqa: E402
    build_qwen2_shaped,
    build_random_qwen2,
    compose_config,
    make_actor,
    make_batch,
    set_dist_env,
    update_batch,
    with_old_log_probs,
)
from sfpo_verl.cpu.platform.allocator import keep_freed_memory_in_this_process  # noqa: E402

CPU_SIZES = {
    # name: (hidden size, layers); character vocabulary, so the layers hold the parameters
    "tiny": (32, 2),
    "medium": (768, 6),
}
# Real models' shapes (their config.json), random weights: no hub needed.
_QWEN25 = dict(vocab_size=151936, max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6,
               tie_word_embeddings=True, num_key_value_heads=2)
CUDA_SIZES = {
    "qwen2.5-0.5b": dict(_QWEN25, hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14),
    "qwen2.5-1.5b": dict(_QWEN25, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12),
}
SIZES = {"cpu": CPU_SIZES, "cuda": CUDA_SIZES}


def time_update(worker, batch, mini_batch_size, **controls) -> tuple[float, float, dict]:
    """(wall seconds, process CPU seconds, metrics) of one actor update."""
    td = update_batch(batch, mini_batch_size=mini_batch_size, **controls)
    wall, cpu = time.perf_counter(), time.process_time()
    output = worker.update_actor(td)
    return time.perf_counter() - wall, time.process_time() - cpu, tu.get(output, "metrics")


def build_model(name: str, device: str, workdir: Path) -> Path:
    if device == "cpu":
        hidden, layers = CPU_SIZES[name]
        return build_random_qwen2(workdir / name, hidden_size=hidden, num_layers=layers)
    return build_qwen2_shaped(workdir / name, CUDA_SIZES[name])


def bench_size(name: str, args, workdir: Path) -> dict:
    model_path = build_model(name, args.device, workdir)
    if args.device == "cuda":  # the peak below is this model's update alone
        import torch

        torch.cuda.reset_peak_memory_stats()
    config = compose_config(
        model_path,
        ["actor_rollout_ref.actor.optim.lr=1e-5", f"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu={args.micro_batch}"],
        device=args.device,
    )
    worker = make_actor(config, sfpo=True, device=args.device)
    module = worker.actor.engine.module
    n_params = sum(p.numel() for p in module.parameters())
    local_param_bytes = sum(p.to_local().numel() * p.element_size() for p in module.parameters() if p.requires_grad)
    batch = with_old_log_probs(worker, make_batch(args.batch, prompt_len=args.prompt_len, response_len=args.response_len))
    sfpo = dict(sfpo_alpha=args.alpha, sfpo_inner_steps=args.inner_steps)
    # On the CPU the parameters already live in host memory: a cpu anchor is the param anchor.
    arms = {"grpo": dict(sfpo_alpha=0.0), "sfpo": dict(sfpo, sfpo_anchor_device="param")}
    if args.device != "cpu":
        arms["sfpo_cpu_anchor"] = dict(sfpo, sfpo_anchor_device="cpu")

    for controls in arms.values():  # warm-up: first calls pay one-time costs (allocator, lazy init)
        time_update(worker, batch, args.mini_batch, **controls)

    wall = {arm: [] for arm in arms}
    cpu = {arm: [] for arm in arms}
    overhead_share = {arm: [] for arm in arms}
    anchor_bytes, anchor_accelerator_bytes, peak_gb = {}, {}, 0.0
    for repeat in range(args.repeats):
        order = list(arms) if repeat % 2 == 0 else list(reversed(arms))  # interleaved, alternating order
        for arm in order:
            w, c, metrics = time_update(worker, batch, args.mini_batch, **arms[arm])
            wall[arm].append(w)
            cpu[arm].append(c)
            peak_gb = max(peak_gb, *_as_list(metrics.get("perf/max_memory_allocated_gb", 0.0)))
            if arm != "grpo":
                phases = sum(metrics[f"sfpo/timing_s/{p}"] for p in ("snapshot", "fast", "reposition", "slow"))
                overhead_share[arm].append((metrics["sfpo/timing_s/snapshot"] + metrics["sfpo/timing_s/reposition"]) / phases)
                anchor_bytes[arm] = metrics["sfpo/anchor_bytes"]
                anchor_accelerator_bytes[arm] = metrics["sfpo/anchor_accelerator_bytes"]

    ideal = args.inner_steps + 1
    med = {arm: statistics.median(wall[arm]) for arm in arms}
    med_cpu = {arm: statistics.median(cpu[arm]) for arm in arms}
    row = {
        "model": name,
        "device": args.device,
        "params": n_params,
        "grpo_pass_s": med["grpo"],
        "sfpo_step_s": med["sfpo"],
        "sfpo_over_grpo": med["sfpo"] / med["grpo"],
        "sfpo_over_k1_grpo": med["sfpo"] / (ideal * med["grpo"]),
        "sfpo_over_k1_grpo_cpu_time": med_cpu["sfpo"] / (ideal * med_cpu["grpo"]),
        "reposition_share": statistics.median(overhead_share["sfpo"]),
        "anchor_over_local_bytes": anchor_bytes["sfpo"] / local_param_bytes,
        "anchor_accelerator_bytes": anchor_accelerator_bytes["sfpo"],
        "peak_memory_allocated_gb": peak_gb,
    }
    if "sfpo_cpu_anchor" in arms:
        row.update(
            cpu_anchor_sfpo_step_s=med["sfpo_cpu_anchor"],
            cpu_anchor_sfpo_over_k1_grpo=med["sfpo_cpu_anchor"] / (ideal * med["grpo"]),
            cpu_anchor_reposition_share=statistics.median(overhead_share["sfpo_cpu_anchor"]),
            cpu_anchor_accelerator_bytes=anchor_accelerator_bytes["sfpo_cpu_anchor"],
        )
    return row


def print_table(rows: list[dict], args) -> None:
    k = args.inner_steps
    where = "CPU" if args.device == "cpu" else _device_name()
    print(f"\nSFPO step (K={k}, alpha={args.alpha}) vs GRPO update pass; medians of {args.repeats}, {where}, 1 rank; "
          f"batch {args.batch} x ({args.prompt_len}+{args.response_len}) tokens, mini-batch {args.mini_batch}")
    print("| model | params | GRPO pass s | SFPO step s | SFPO/GRPO | SFPO/((K+1)·GRPO) wall | same, CPU time | "
          "snapshot+reposition share | anchor/local params | anchor accelerator bytes | peak alloc GB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['params'] / 1e6:.2f}M | {r['grpo_pass_s']:.3f} | {r['sfpo_step_s']:.3f} | "
              f"{r['sfpo_over_grpo']:.2f}x | {r['sfpo_over_k1_grpo']:.3f} | {r['sfpo_over_k1_grpo_cpu_time']:.3f} | "
              f"{100 * r['reposition_share']:.2f}% | {r['anchor_over_local_bytes']:.3f} | "
              f"{r['anchor_accelerator_bytes']:,} | {r['peak_memory_allocated_gb']:.2f} |")
    if any("cpu_anchor_sfpo_step_s" in r for r in rows):
        print("\nWith the anchor in host memory (algorithm.sfpo.anchor_device=cpu), same run, interleaved:")
        print("| model | SFPO step s | SFPO/((K+1)·GRPO) wall | snapshot+reposition share | anchor accelerator bytes |")
        print("|---|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['model']} | {r['cpu_anchor_sfpo_step_s']:.3f} | {r['cpu_anchor_sfpo_over_k1_grpo']:.3f} | "
                  f"{100 * r['cpu_anchor_reposition_share']:.2f}% | {r['cpu_anchor_accelerator_bytes']:,} |")
    print("\nTargets: SFPO/((K+1)·GRPO) within 1.05, snapshot+reposition < 2% of the step, "
          "anchor = exactly one fp32 copy of the local shard (1.000).")


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _device_name() -> str:
    import torch

    return torch.cuda.get_device_name()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=sorted(SIZES), default="cpu")
    parser.add_argument("--sizes", default=None,
                        help="comma-separated; cpu: " + ", ".join(CPU_SIZES) + "; cuda: " + ", ".join(CUDA_SIZES)
                        + " (default: all of the device's)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--inner-steps", type=int, default=3, help="K")
    parser.add_argument("--alpha", type=float, default=0.8)
    parser.add_argument("--batch", type=int, default=None, help="sequences per step (cpu 8, cuda 32)")
    parser.add_argument("--mini-batch", type=int, default=None, help="sequences per optimizer step (cpu 4, cuda 8)")
    parser.add_argument("--micro-batch", type=int, default=4, help="sequences per forward/backward")
    parser.add_argument("--prompt-len", type=int, default=None, help="cpu 16, cuda 256")
    parser.add_argument("--response-len", type=int, default=None, help="cpu 32, cuda 768")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows to this JSON file")
    args = parser.parse_args()
    cpu = args.device == "cpu"
    for key, cpu_default, cuda_default in (("batch", 8, 32), ("mini_batch", 4, 8), ("prompt_len", 16, 256),
                                          ("response_len", 32, 768)):
        if getattr(args, key) is None:
            setattr(args, key, cpu_default if cpu else cuda_default)
    sizes = args.sizes.split(",") if args.sizes else list(SIZES[args.device])
    unknown = set(sizes) - SIZES[args.device].keys()
    if unknown:
        parser.error(f"unknown --sizes {sorted(unknown)} for --device {args.device}; choose from {', '.join(SIZES[args.device])}")
    if not cpu:
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda: torch sees no CUDA device (python -m sfpo_verl.doctor says why)")

    set_dist_env(device=args.device)
    malloc_settings = keep_freed_memory_in_this_process() if cpu else {}
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for name in sizes:
            print(f"[bench] {name}: building model and worker, {args.repeats} repeats ...", flush=True)
            rows.append(dict(bench_size(name, args, Path(workdir)), malloc_settings=malloc_settings))
            gc.collect()  # the finished size's worker and its accelerator memory
            print(f"[bench] {name}: {json.dumps(rows[-1])}", flush=True)
    print_table(rows, args)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
        print(f"\nrows written to {args.json}")


if __name__ == "__main__":
    main()
