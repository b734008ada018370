"""verl features a GRPO config may carry, end to end with SFPO on the CPU: the real v1 trainer
through `python -m sfpo_verl.main`, launched and checked with the smoke harness's helpers
(`device_settings`, `arm_overrides`, `launch`, `check_arm`: alpha > 0 on every step, the anchor,
weight sync). Two launches at once (~1 min of start-up each), features combined where they compose:

  dapo_actor_features  DAPO as verl 0.9.1 exposes it (clip-higher, token-mean, dynamic sampling
                  via algorithm.filter_groups, overlong penalty via the dapo reward manager) with
                  rollout correction's token importance weights (decoupled mode: old log-probs
                  recomputed, IS weights in the actor loss), and the actor features dynamic batch
                  size, ppo_epochs=2, shuffle, gradient checkpointing
  lora_kl_loss    LoRA adapters merged for the rollout (the anchor holds only the adapters), with
                  KL loss against the reference model (with LoRA: the actor without its adapters)

Exact update equivalences of the actor-side features are in test_update_equivalence.py. A critic
(adv_estimator=gae) cannot run on the CPU (verl loads its value head with flash-attention), so
CPU mode refuses it, and a separate reference model too (verl pins its weights in host memory,
which needs an accelerator): KL loss runs here with LoRA, whose reference is the actor itself.
"""

from __future__ import annotations

import json
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from sfpo_verl.cpu.task.build import TaskPaths, build_task
from sfpo_verl.smoke import PROBS_DIFF_MEAN_CUDA, SMOKE_TASK, Arm, arm_overrides, check_arm, device_settings, launch

pytestmark = [pytest.mark.slow, pytest.mark.verl09(reason="end-to-end CPU runs (trainer.device=cpu)")]

LORA = {"actor_rollout_ref.model.lora_rank": 4, "actor_rollout_ref.model.lora_alpha": 8,
        "actor_rollout_ref.model.target_modules": "all-linear"}
ACTOR_FEATURES = {
    "actor_rollout_ref.actor.use_dynamic_bsz": True,
    "actor_rollout_ref.actor.ppo_max_token_len_per_gpu": 64,
    "actor_rollout_ref.actor.ppo_epochs": 2,
    "actor_rollout_ref.actor.shuffle": True,
    "actor_rollout_ref.model.enable_gradient_checkpointing": True,
}
ARMS = {
    "dapo_actor_features": Arm("sfpo_dapo_actor_features", "sfpo", {
        **ACTOR_FEATURES,
        "actor_rollout_ref.actor.clip_ratio_low": 0.2,
        "actor_rollout_ref.actor.clip_ratio_high": 0.28,
        "actor_rollout_ref.actor.loss_agg_mode": "token-mean",
        "algorithm.filter_groups.enable": True,
        "algorithm.filter_groups.metric": "reward",
        "algorithm.filter_groups.max_num_gen_batches": 10,
        "reward.reward_manager.name": "dapo",
        # responses longer than 4 - 3 = 1 token are penalised: the penalty shows in the scores
        "+reward.reward_kwargs.overlong_buffer_cfg": {"enable": True, "len": 3, "penalty_factor": 1.0, "log": True},
        "+reward.reward_kwargs.max_resp_len": 4,
        # verl's own sampler: a custom one (the quickstart's fast-polling one) owns filtering
        # and ignores algorithm.filter_groups
        "trainer.v1.sampler.custom_sampler.path": None,
        "algorithm.rollout_correction.rollout_is": "token",
        "algorithm.rollout_correction.rollout_is_threshold": 2.0,
    }),
    "lora_kl_loss": Arm("sfpo_lora_kl_loss", "sfpo", {
        **LORA,
        "actor_rollout_ref.model.lora.merge": True,
        "actor_rollout_ref.actor.use_kl_loss": True,
        "actor_rollout_ref.actor.kl_loss_coef": 0.1,
        "actor_rollout_ref.actor.kl_loss_type": "low_var_kl",
        "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu": 8,
    }),
}


@pytest.fixture(scope="module")
def launched(tmp_path_factory) -> dict[str, Future]:
    """Both arms launched at once (a launch keeps about one of the two cores busy), even when
    only one of the tests here was selected."""
    out = tmp_path_factory.mktemp("compat_cpu")
    build_task(out / "task", SMOKE_TASK, log=lambda *_: None)
    task, base = TaskPaths(out / "task"), device_settings("cpu", "hf")

    def run(arm: Arm) -> dict:
        steps, _, log = launch(arm, arm_overrides(arm, base, task, out), out)
        return {"arm": arm, "steps": steps, "log": log, "task": task}

    with ThreadPoolExecutor(len(ARMS)) as pool:
        return {name: pool.submit(run, arm) for name, arm in ARMS.items()}


@pytest.fixture
def run_arm(launched):
    """An arm's metrics by step, its log and task; its launch's failure fails only its test."""
    return lambda name: launched[name].result()


def assert_smoke_checks(run: dict, skip: tuple[str, ...] = ()):
    for name, result in check_arm(run["arm"], run["steps"], "cpu").items():
        if name not in skip:
            assert result["ok"], f"{run['arm'].name}/{name}: {result['detail']} (log: {run['log']})"


def metric_everywhere(steps: dict, key: str) -> list:
    values = [m.get(key) for m in steps.values()]
    assert all(v is not None for v in values), f"{key} missing on some steps: {values}"
    return values


def test_dynamic_bsz_epochs_shuffle_and_checkpointing(run_arm):
    run = run_arm("dapo_actor_features")
    assert_smoke_checks(run)
    metric_everywhere(run["steps"], "sfpo/fast_last_ppo_kl")


def test_dapo_with_rollout_correction(run_arm):
    run = run_arm("dapo_actor_features")
    assert_smoke_checks(run)
    logged = set().union(*run["steps"].values())
    assert any("filter_groups" in key for key in logged), "dynamic sampling logged nothing"
    assert any(key.startswith("rollout_corr/") for key in logged), "no importance-weight metrics"
    scores = {json.loads(line)["score"] for f in (run["log"].parent / "rollouts").glob("*.jsonl")
              for line in f.read_text().splitlines()}
    assert scores - {0.0, 1.0}, f"no overlong penalty in the scores {scores}"


def test_lora_anchors_only_the_adapters_and_the_rollout_gets_the_update(run_arm):
    run = run_arm("lora_kl_loss")
    # verl sends the merged weights in bf16 (even on the CPU), so the rollout differs from the
    # actor by bf16 rounding from step 1 on: the bound is the smoke's bf16 one, far below what
    # stale weights give after an update at lr 1e-2
    assert_smoke_checks(run, skip=("weight_sync",))
    later = [m for step, m in run["steps"].items() if step > min(run["steps"])]
    diffs = [m["training/rollout_probs_diff_mean"] for m in later]
    assert all(d < PROBS_DIFF_MEAN_CUDA for d in diffs), diffs
    assert all(v > 0 for v in metric_everywhere(run["steps"], "actor/kl_loss"))
    adapter_bytes = 4 * lora_adapter_parameters(run["task"].model)
    assert metric_everywhere(run["steps"], "sfpo/anchor_bytes") == [adapter_bytes] * len(run["steps"])


def lora_adapter_parameters(model_path) -> int:
    """Trainable parameters of the task model with the LoRA adapters verl adds (peft, all-linear)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_path)
    lora = LoraConfig(r=LORA["actor_rollout_ref.model.lora_rank"], lora_alpha=LORA["actor_rollout_ref.model.lora_alpha"],
                      target_modules="all-linear")
    return sum(p.numel() for p in get_peft_model(model, lora).parameters() if p.requires_grad)
