"""Benchmark: the SFPO step against verl's GRPO update pass, side by side in one run.

For each model size it times, interleaved on the same worker and batch, a GRPO update pass
(alpha = 0: verl's own pass) and an SFPO step (K fast passes + reposition + slow pass),
and prints their ratio against the ideal (K+1) x GRPO, the snapshot + reposition share of
the SFPO step, and the anchor's bytes against the rank's local parameter bytes.

    python scripts/benchmark_update.py                 # tiny and ~57M-parameter Qwen2, K=3
    python scripts/benchmark_update.py --sizes tiny --repeats 10

Runs on the CPU with verl's real FSDP2 engine (one gloo rank). Times are medians over
--repeats; absolute times on shared machines are noisy, the ratios are the figures. Both
wall-clock and this process's CPU time (all its threads) are reported: on a machine shared
with other jobs the CPU-time ratio is the steadier one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("VERL_PLATFORM", "cpu")

from verl.utils import tensordict_utils as tu  # noqa: E402

from sfpo_verl.local_actor import (  # noqa: E402
    build_random_qwen2,
    compose_config,
    make_actor,
    make_batch,
    set_dist_env,
    update_batch,
    with_old_log_probs,
)

SIZES = {
    # name: (hidden size, layers); character vocabulary, so the layers hold the parameters
    "tiny": (32, 2),
    "medium": (768, 6),
}


def time_update(worker, batch, mini_batch_size, **controls) -> tuple[float, float, dict]:
    """(wall seconds, process CPU seconds, metrics) of one actor update."""
    td = update_batch(batch, mini_batch_size=mini_batch_size, **controls)
    wall, cpu = time.perf_counter(), time.process_time()
    output = worker.update_actor(td)
    return time.perf_counter() - wall, time.process_time() - cpu, tu.get(output, "metrics")


def bench_size(name: str, args, workdir: Path) -> dict:
    hidden, layers = SIZES[name]
    model_path = build_random_qwen2(workdir / name, hidden_size=hidden, num_layers=layers)
    config = compose_config(
        model_path,
        ["actor_rollout_ref.actor.optim.lr=1e-5", "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4"],
    )
    worker = make_actor(config, sfpo=True)
    module = worker.actor.engine.module
    n_params = sum(p.numel() for p in module.parameters())
    local_param_bytes = sum(p.to_local().numel() * p.element_size() for p in module.parameters() if p.requires_grad)
    batch = with_old_log_probs(worker, make_batch(args.batch, prompt_len=args.prompt_len, response_len=args.response_len))
    sfpo_controls = dict(sfpo_alpha=args.alpha, sfpo_inner_steps=args.inner_steps)

    # warm-up: first calls pay one-time costs (allocator, lazy init)
    time_update(worker, batch, args.mini_batch, sfpo_alpha=0.0)
    time_update(worker, batch, args.mini_batch, **sfpo_controls)

    grpo_wall, grpo_cpu, sfpo_wall, sfpo_cpu, overhead_share = [], [], [], [], []
    for repeat in range(args.repeats):
        order = ("grpo", "sfpo") if repeat % 2 == 0 else ("sfpo", "grpo")
        for arm in order:
            if arm == "grpo":
                wall, cpu, _ = time_update(worker, batch, args.mini_batch, sfpo_alpha=0.0)
                grpo_wall.append(wall)
                grpo_cpu.append(cpu)
            else:
                wall, cpu, metrics = time_update(worker, batch, args.mini_batch, **sfpo_controls)
                sfpo_wall.append(wall)
                sfpo_cpu.append(cpu)
                phases = sum(metrics[f"sfpo/timing_s/{p}"] for p in ("snapshot", "fast", "reposition", "slow"))
                overhead_share.append(
                    (metrics["sfpo/timing_s/snapshot"] + metrics["sfpo/timing_s/reposition"]) / phases
                )
                anchor_bytes = metrics["sfpo/anchor_bytes"]
    cpu_anchor = time_update(worker, batch, args.mini_batch, sfpo_anchor_device="cpu", **sfpo_controls)[2]

    ideal = args.inner_steps + 1
    grpo_s, sfpo_s = statistics.median(grpo_wall), statistics.median(sfpo_wall)
    grpo_c, sfpo_c = statistics.median(grpo_cpu), statistics.median(sfpo_cpu)
    return {
        "size": name,
        "params": n_params,
        "grpo_pass_s": grpo_s,
        "sfpo_step_s": sfpo_s,
        "sfpo_over_grpo": sfpo_s / grpo_s,
        "sfpo_over_ideal": sfpo_s / (ideal * grpo_s),
        "sfpo_over_ideal_cpu": sfpo_c / (ideal * grpo_c),
        "snapshot_reposition_share": statistics.median(overhead_share),
        "anchor_over_local_params": anchor_bytes / local_param_bytes,
        "cpu_anchor_over_local_params": cpu_anchor["sfpo/anchor_bytes"] / local_param_bytes,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="tiny,medium", help=f"comma-separated, from {', '.join(SIZES)}")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--inner-steps", type=int, default=3, help="K")
    parser.add_argument("--alpha", type=float, default=0.8)
    parser.add_argument("--batch", type=int, default=8, help="sequences per step")
    parser.add_argument("--mini-batch", type=int, default=4, help="sequences per optimizer step")
    parser.add_argument("--prompt-len", type=int, default=16)
    parser.add_argument("--response-len", type=int, default=32)
    args = parser.parse_args()
    unknown = set(args.sizes.split(",")) - SIZES.keys()
    if unknown:
        parser.error(f"unknown --sizes {sorted(unknown)}; choose from {', '.join(SIZES)}")

    set_dist_env()
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.sizes.split(","):
            print(f"[bench] {name}: building model and worker, {args.repeats} repeats ...", flush=True)
            rows.append(bench_size(name, args, Path(workdir)))

    k = args.inner_steps
    print(f"\nSFPO step (K={k}, alpha={args.alpha}) vs GRPO update pass; medians of {args.repeats}, CPU, 1 rank")
    header = (
        f"| model | params | GRPO pass s | SFPO step s | SFPO/GRPO | SFPO/((K+1)·GRPO) wall | same, CPU time | "
        "snapshot+reposition share | anchor/local params (param) | anchor/local params (cpu) |"
    )
    print(header)
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['size']} | {r['params'] / 1e6:.2f}M | {r['grpo_pass_s']:.3f} | {r['sfpo_step_s']:.3f} | "
            f"{r['sfpo_over_grpo']:.2f}x | {r['sfpo_over_ideal']:.3f} | {r['sfpo_over_ideal_cpu']:.3f} | "
            f"{100 * r['snapshot_reposition_share']:.2f}% | "
            f"{r['anchor_over_local_params']:.3f} | {r['cpu_anchor_over_local_params']:.3f} |"
        )
    print(
        "\nTargets: SFPO/((K+1)·GRPO) within 1.05, snapshot+reposition < 2% of the step, "
        "anchor = exactly one fp32 copy of the local shard (1.000)."
    )


if __name__ == "__main__":
    main()
