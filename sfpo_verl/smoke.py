"""Smoke run of the whole trainer: a few SFPO and GRPO steps through `python -m sfpo_verl.main`
on the task's tiny model (built locally, no hub), with checks that the GPU path and the CPU
path share.

    python -m sfpo_verl.smoke --device cuda     # = bash scripts/gpu_smoke.sh; report in runs/smoke_cuda/
    python -m sfpo_verl.smoke --device cpu      # = bash scripts/gpu_smoke.sh --cpu; report in runs/smoke_cpu/

Arms, 3 steps each (one trainer launch each):
  grpo          algorithm.name=grpo (alpha must be 0)
  sfpo          anchor_device=param; checkpoints at step 2
  sfpo_offload  anchor_device=cpu with param and optimizer offload (no anchor bytes on the accelerator)
  sfpo_fsdp1    actor.strategy=fsdp (FSDP1; CUDA only: it cannot run on the CPU)
  sfpo_resume   resumes `sfpo` from its step-2 checkpoint with the saved switch marked as fired,
                so step 3 must be a plain step (alpha 0): the switch state came back
On CUDA the settings are verl's GPU defaults (FSDP2, bf16 compute over fp32 master weights,
flash-attention and packed sequences when flash-attn is installed) with the vLLM rollout
(`--rollout hf` swaps in this package's host-memory rollout); on the CPU they are the
quickstart's (the CPU platform's sfpo_verl/cpu/platform/cpu_settings.yaml under
sfpo_verl/cpu/quickstart/quickstart.yaml) with two trainer ranks for `sfpo`.

Checks: alpha > 0 on every SFPO step and 0 on every GRPO step; after an update, the rollout's
log-probs agree with the actor's (weight sync works); the resume; the anchor's accelerator
bytes (0 with anchor_device=cpu); the rewards equal the math reward of the generated text.
Writes DIR/smoke_report.json and prints per-phase times, each arm's peak accelerator memory and
the anchor's bytes. Exits 1 when a check fails, naming it and the arm's log. On the CPU two arms
run at a time (`--jobs`): one launch keeps about one of two cores busy.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from sfpo_verl.cpu.quickstart.run import REWARD_PATH, read_config, run_arm
from sfpo_verl.cpu.settings import cpu_only_keys, merge_overrides
from sfpo_verl.cpu.task.arithmetic import DATA_SOURCE
from sfpo_verl.cpu.task.build import TaskPaths, TaskSettings, build_task
from sfpo_verl.paper.analysis.runs import read_file_logger

STEPS = 3
SAVE_STEP = 2
# A small task (64 problems), pre-trained for seconds on clean answers: about half its samples
# are right, so GRPO groups have reward variance and the weights move (the weight-sync check).
SMOKE_TASK = TaskSettings(max_operand=3, label_noise=0.0, pretrain_steps=200)
# Small batches and a large step, so the weights visibly move between rollouts.
RUN = {
    "data.train_batch_size": 4,
    "actor_rollout_ref.rollout.n": 4,
    "actor_rollout_ref.actor.ppo_mini_batch_size": 4,
    "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu": 8,
    "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu": 8,
    "actor_rollout_ref.actor.optim.lr": 1e-2,
    "trainer.total_training_steps": STEPS,
    "trainer.val_before_train": False,
    "trainer.test_freq": -1,
    "trainer.save_freq": -1,
}
# Rollout vs actor probabilities after an update (verl's training/rollout_probs_diff_*). On the
# CPU both sides compute in fp32, so any difference beyond rounding means stale weights. On CUDA
# the actor computes in bf16 (verl's default) while the rollout samples at its own precision,
# so the mean difference is checked, at a bound well under what one update at lr 1e-2 moves.
PROBS_DIFF_MAX_CPU = 1e-4
PROBS_DIFF_MEAN_CUDA = 1e-2
PHASES = ("timing_s/gen", "timing_s/old_log_prob", "timing_s/update_actor", "timing_s/update_weights", "timing_s/step")
SFPO_PHASES = ("sfpo/timing_s/snapshot", "sfpo/timing_s/fast", "sfpo/timing_s/reposition", "sfpo/timing_s/slow")


@dataclass
class Arm:
    name: str
    algorithm: str
    overrides: dict = field(default_factory=dict)
    resume_from: str | None = None  # arm whose step-SAVE_STEP checkpoint this arm resumes


def arms_for(device: str) -> tuple[list[Arm], dict[str, str]]:
    """The arms to launch on `device`, and those skipped there with the reason."""
    # Two trainer ranks on the CPU: FSDP2 shards and the weight-sync collective on both.
    ranks = {"trainer.n_gpus_per_node": 2} if device == "cpu" else {}
    arms = [
        Arm("grpo", "grpo"),
        Arm("sfpo", "sfpo", {**ranks, "trainer.save_freq": SAVE_STEP}),
        Arm("sfpo_offload", "sfpo", {
            "algorithm.sfpo.anchor_device": "cpu",
            "actor_rollout_ref.actor.fsdp_config.param_offload": True,
            "actor_rollout_ref.actor.fsdp_config.optimizer_offload": True,
        }),
        Arm("sfpo_fsdp1", "sfpo", {"actor_rollout_ref.actor.strategy": "fsdp", "actor_rollout_ref.ref.strategy": "fsdp"}),
        Arm("sfpo_resume", "sfpo", {**ranks, "trainer.resume_mode": "resume_path"}, resume_from="sfpo"),
    ]
    skipped = {}
    if device == "cpu":
        skipped["sfpo_fsdp1"] = "FSDP1 cannot run on the CPU (it syncs module states through a GPU)"
        arms = [a for a in arms if a.name not in skipped]
    return arms, skipped


def device_settings(device: str, rollout: str) -> dict:
    """verl overrides for `device`: the quickstart's CPU set, or verl's GPU defaults (for the CPU
    platform's CPU-only settings)."""
    settings = read_config()["verl"]
    if device == "cpu":
        return settings
    cpu_only = {key.lstrip("+") for key in cpu_only_keys()}
    settings = {key: value for key, value in settings.items() if key.lstrip("+") not in cpu_only}
    flash = importlib.util.find_spec("flash_attn") is not None
    settings.update({
        "trainer.device": "cuda",
        "actor_rollout_ref.rollout.name": rollout,
        "actor_rollout_ref.actor.strategy": "fsdp2",
        "actor_rollout_ref.model.use_remove_padding": flash,
        "+actor_rollout_ref.model.override_config.attn_implementation": "flash_attention_2" if flash else "sdpa",
    })
    if rollout == "vllm":
        settings["actor_rollout_ref.rollout.gpu_memory_utilization"] = 0.3  # a tiny model beside the trainer
    else:
        settings["actor_rollout_ref.rollout.dtype"] = "float32"  # host-memory rollout: fp32 is its fast path
    return settings


def arm_overrides(arm: Arm, base: dict, task: TaskPaths, out: Path) -> list[str]:
    """The verl overrides of one arm: `base`, the run settings, the task, then the arm's own."""
    settings = {
        **base,
        **RUN,
        "algorithm.name": arm.algorithm,
        "trainer.experiment_name": arm.name,
        "trainer.default_local_dir": out / arm.name / "checkpoints",
        "trainer.rollout_data_dir": out / arm.name / "rollouts",
        "data.train_files": task.train,
        "data.val_files": task.val,
        "actor_rollout_ref.model.path": task.model,
        "reward.custom_reward_function.path": REWARD_PATH,
        "reward.custom_reward_function.name": "compute_score",
        **arm.overrides,
    }
    if arm.resume_from:
        settings["trainer.resume_from_path"] = out / arm.resume_from / "checkpoints" / f"global_step_{SAVE_STEP}"
    return merge_overrides({k: str(v) if isinstance(v, Path) else v for k, v in settings.items()}, [])


def launch(arm: Arm, overrides: list[str], out: Path, timeout_s: float | None = None) -> tuple[dict[int, dict], float, Path]:
    """Run one arm (killed after `timeout_s`); returns its metrics by step, its wall seconds and its log.
    Raises RuntimeError naming the log when the run fails."""
    arm_dir = out / arm.name
    result = run_arm(arm.name, overrides, arm_dir, STEPS, timeout_s)
    return read_file_logger(arm_dir / "metrics.jsonl"), result["wall_seconds"], arm_dir / "train.log"


def check_arm(arm: Arm, steps: dict[int, dict], device: str) -> dict[str, dict]:
    """{check name: {"ok": bool, "detail": str}} for one finished arm."""
    checks = {}

    def check(name: str, ok: bool, detail: str):
        checks[name] = {"ok": bool(ok), "detail": detail}

    alphas = {s: m.get("sfpo/alpha") for s, m in sorted(steps.items())}
    if arm.resume_from:
        check("resume", min(steps) == SAVE_STEP + 1, f"first step {min(steps)}, expected {SAVE_STEP + 1}")
        last = steps[max(steps)]
        check("switch_state_restored", last.get("sfpo/switch_fired") == 1.0 and last.get("sfpo/alpha") == 0.0,
              f"switch_fired {last.get('sfpo/switch_fired')}, alpha {last.get('sfpo/alpha')} (saved switch had fired)")
    elif arm.algorithm == "grpo":
        check("alpha", all(a == 0.0 for a in alphas.values()), f"alpha by step {alphas}")
    else:
        norms = [m.get("sfpo/fast_displacement_norm", 0.0) for m in steps.values()]
        check("alpha", all(a is not None and a > 0 for a in alphas.values())
              and all(m.get("sfpo/active") == 1.0 for m in steps.values()) and all(n > 0 for n in norms),
              f"alpha by step {alphas}, displacement norms {norms}")
        anchor = [m.get("sfpo/anchor_bytes", 0) for m in steps.values()]
        on_accelerator = [m.get("sfpo/anchor_accelerator_bytes") for m in steps.values()]
        in_host_memory = arm.overrides.get("algorithm.sfpo.anchor_device") == "cpu" or device == "cpu"
        expected = [0] * len(anchor) if in_host_memory else anchor
        check("anchor_bytes", all(a > 0 for a in anchor) and on_accelerator == expected,
              f"anchor bytes {anchor}, on the accelerator {on_accelerator}")
    if not arm.resume_from:
        first, later = min(steps), [s for s in steps if s > min(steps)]
        moved = steps[first].get("actor/grad_norm", 0.0) > 0
        if device == "cpu":
            diffs = [steps[s].get("training/rollout_probs_diff_max") for s in later]
            ok = all(d is not None and d < PROBS_DIFF_MAX_CPU for d in diffs)
            detail = f"rollout_probs_diff_max {diffs} (< {PROBS_DIFF_MAX_CPU})"
        else:
            diffs = [steps[s].get("training/rollout_probs_diff_mean") for s in later]
            ok = all(d is not None and d < PROBS_DIFF_MEAN_CUDA for d in diffs)
            detail = f"rollout_probs_diff_mean {diffs} (< {PROBS_DIFF_MEAN_CUDA})"
        check("weight_sync", moved and ok, f"step {first} grad_norm {steps[first].get('actor/grad_norm')}; {detail}")
    return checks


def check_rewards(arm_dir: Path) -> dict:
    """Every dumped rollout's score equals the math reward's score of its generated text."""
    from sfpo_verl.paper.reward import compute_score

    samples = [json.loads(line) for f in sorted((arm_dir / "rollouts").glob("*.jsonl"))
               for line in f.read_text().splitlines()]
    expected = STEPS * RUN["data.train_batch_size"] * RUN["actor_rollout_ref.rollout.n"]
    wrong = [s for s in samples if s["score"] != compute_score(DATA_SOURCE, s["output"], s["gts"])["score"]]
    generated = any(s["output"].strip() for s in samples)
    return {"ok": len(samples) == expected and not wrong and generated,
            "detail": f"{len(samples)} samples (expected {expected}), {len(wrong)} scored differently, "
                      f"non-empty text: {generated}"}


def summarize(steps: dict[int, dict]) -> dict:
    """Mean per-phase seconds over the arm's steps, peak accelerator memory, anchor bytes."""
    def mean(key):
        values = [m[key] for m in steps.values() if key in m]
        return sum(values) / len(values) if values else None

    # verl's actor update reports its process's peak accelerator memory (0 on the CPU)
    peaks = [m["actor/perf/max_memory_allocated_gb"] for m in steps.values() if "actor/perf/max_memory_allocated_gb" in m]
    return {
        "phases_s": {k: mean(k) for k in PHASES + SFPO_PHASES if mean(k) is not None},
        "peak_memory_allocated_gb": max(peaks) if peaks else None,
        "anchor_bytes": mean("sfpo/anchor_bytes"),
        "anchor_accelerator_bytes": mean("sfpo/anchor_accelerator_bytes"),
    }


def select_arms(arms: list[Arm], names: list[str] | None) -> list[Arm]:
    """The arms named (all when None), in launch order; a resume arm needs the arm it resumes."""
    if names is None:
        return arms
    known = {a.name for a in arms}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown --arms {unknown}; this device runs {', '.join(sorted(known))}")
    chosen = [a for a in arms if a.name in names]
    for arm in chosen:
        if arm.resume_from and arm.resume_from not in names:
            raise ValueError(f"--arms: {arm.name} resumes the {arm.resume_from} arm's checkpoint; name both")
    return chosen


def run_smoke(device: str, out: Path, rollout: str, arm_names: list[str] | None = None, jobs: int = 1) -> dict:
    """Launch the arms, `jobs` at a time (an arm that resumes another starts once that one ended),
    check each, and write the report."""
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    task_dir = out / "task"
    # The task's tiny model, briefly trained: the smoke checks mechanics, not learning.
    build_task(task_dir, SMOKE_TASK, log=lambda *_: None)
    task = TaskPaths(task_dir)
    base = device_settings(device, rollout)
    arms, skipped = arms_for(device)
    arms = select_arms(arms, arm_names)
    report = {"device": device, "rollout": base["actor_rollout_ref.rollout.name"], "steps": STEPS,
              "accelerator": _accelerator_name(device), "arms_at_once": jobs, "arms": {}, "skipped": skipped}
    entries: dict[str, Future] = {}

    def run_checked(arm: Arm) -> dict | str:
        """The arm's report entry, or why it was skipped."""
        if arm.resume_from:
            resumed = entries[arm.resume_from].result()
            if "launch" in resumed["checks"]:
                return f"the {arm.resume_from} arm it resumes failed"
            _mark_switch_fired(out / arm.resume_from / "checkpoints" / f"global_step_{SAVE_STEP}")
        entry = {"overrides": {k: str(v) for k, v in arm.overrides.items()}}
        try:
            steps, seconds, log = launch(arm, arm_overrides(arm, base, task, out), out)
        except RuntimeError as failure:
            entry["checks"] = {"launch": {"ok": False, "detail": str(failure)}}
            return entry
        entry.update(wall_s=round(seconds, 1), log=str(log), **summarize(steps), checks=check_arm(arm, steps, device))
        if arm.name == "grpo":
            entry["checks"]["rewards"] = check_rewards(out / arm.name)
        return entry

    # in launch order, so an arm that resumes another is submitted after it and cannot wait on
    # an arm that has not started
    with ThreadPoolExecutor(jobs) as pool:
        for arm in arms:
            entries[arm.name] = pool.submit(run_checked, arm)
    for name, future in entries.items():
        result = future.result()
        report["skipped" if isinstance(result, str) else "arms"][name] = result
    report["ok"] = all(c["ok"] for entry in report["arms"].values() for c in entry["checks"].values())
    (out / "smoke_report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _mark_switch_fired(checkpoint: Path) -> None:
    """Edit the saved SFPO state as if the entropy switch had fired before the checkpoint."""
    state_file = checkpoint / "sfpo_state.json"
    state = json.loads(state_file.read_text())
    state["switch"]["fired"], state["switch"]["fired_at_step"] = True, SAVE_STEP
    state_file.write_text(json.dumps(state))


def _accelerator_name(device: str) -> str:
    if device == "cpu":
        return "cpu"
    import torch

    return f"{torch.cuda.get_device_name()} ({torch.cuda.device_count()} visible)"


def print_report(report: dict) -> None:
    print(f"\nSmoke run on {report['accelerator']}, rollout {report['rollout']}, {report['steps']} steps per arm, "
          f"{report['arms_at_once']} arm(s) at a time (wall seconds include the others' load)")
    print("| arm | wall s | gen s | update_actor s | SFPO fast s | reposition s | slow s | peak alloc GB | "
          "anchor bytes | anchor accelerator bytes |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, entry in report["arms"].items():
        if "phases_s" not in entry:
            print(f"| {name} | failed | | | | | | | | |")
            continue
        p = entry["phases_s"]

        def cell(value, fmt="{:.2f}"):
            return "" if value is None else fmt.format(value)

        print(f"| {name} | {entry['wall_s']:.0f} | {cell(p.get('timing_s/gen'))} | {cell(p.get('timing_s/update_actor'))} | "
              f"{cell(p.get('sfpo/timing_s/fast'))} | {cell(p.get('sfpo/timing_s/reposition'), '{:.4f}')} | "
              f"{cell(p.get('sfpo/timing_s/slow'))} | {cell(entry['peak_memory_allocated_gb'])} | "
              f"{cell(entry['anchor_bytes'], '{:,.0f}')} | {cell(entry['anchor_accelerator_bytes'], '{:,.0f}')} |")
    for name, reason in report["skipped"].items():
        print(f"skipped {name}: {reason}")
    print()
    for name, entry in report["arms"].items():
        for check, result in entry["checks"].items():
            print(f"{'PASS' if result['ok'] else 'FAIL'}  {name}/{check}: {result['detail']}")
    print(f"\n{'all checks passed' if report['ok'] else 'SOME CHECKS FAILED'}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--out-dir", type=Path, default=None, help="default: runs/smoke_<device>")
    parser.add_argument("--rollout", choices=("vllm", "hf"), default="vllm",
                        help="CUDA only: vllm (verl's GPU default) or hf (this package's host-memory rollout)")
    parser.add_argument("--arms", default=None, help="comma-separated subset of the arms (default: all)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="arms launched at a time (default: 2 on the CPU, where one launch keeps about one "
                             "core busy; 1 on CUDA, so each arm's peak memory is its own)")
    args = parser.parse_args(argv)
    if args.jobs is not None and args.jobs < 1:
        parser.error(f"--jobs {args.jobs}: must be 1 or more")
    jobs = args.jobs or (2 if args.device == "cpu" else 1)
    args.out_dir = args.out_dir or Path(f"runs/smoke_{args.device}")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda: torch sees no CUDA device; `python -m sfpo_verl.doctor` says why "
                         "(or run the CPU smoke: --device cpu)")
        if args.rollout == "vllm" and importlib.util.find_spec("vllm") is None:
            parser.error("--rollout vllm: vLLM is not installed (bash scripts/setup_gpu.sh installs it); "
                         "--rollout hf runs every other check without it")
    try:
        report = run_smoke(args.device, args.out_dir, args.rollout, args.arms.split(",") if args.arms else None, jobs)
    except ValueError as error:
        parser.error(str(error))
    print_report(report)
    print(f"report: {args.out_dir.resolve() / 'smoke_report.json'}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
