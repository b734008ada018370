"""SFPO's update against verl's own update, on the real FSDP2 engine on CPU (fp32, gloo).

Tolerances: alpha = 1 and alpha = 0 / K = 0 run exactly the operations of verl's own passes
(the reposition is a lerp that leaves thetaK bit-exact at alpha = 1), so they are compared
bitwise (rtol = atol = 0). For a general alpha the reposition (a lerp) and the hand formula
theta0 + alpha * (thetaK - theta0) round differently by about one ulp, which the following
Adam steps carry (Adam divides by sqrt(v), so tiny gradient components can turn a 1-ulp
change into ~1e-6): rtol=1e-5 / atol=1e-5 is near-exact for this tiny model's weights
(magnitudes ~1e-2..1) and far below the parameter change of one step (> 1e-3, asserted).
Two gloo ranks differ from one rank by the order of gradient reductions: same tolerance.
"""

from __future__ import annotations

import gc
import json
import weakref

import pytest
import torch
import torch.multiprocessing as mp
from torch.distributed.tensor import DTensor

import sfpo_verl.core.workers.sfpo_worker as sfpo_worker
from sfpo_verl.cpu.local_actor import (
    build_random_qwen2,
    compose_config,
    free_port,
    full_params,
    make_actor,
    make_batch,
    set_dist_env,
    update_batch,
    with_old_log_probs,
)

NEAR_EXACT = dict(rtol=1e-5, atol=1e-5)
MINI_BATCH = 4  # 8 sequences -> 2 optimizer steps per pass


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    set_dist_env()
    return build_random_qwen2(tmp_path_factory.mktemp("tiny_qwen2") / "model")


@pytest.fixture(scope="module")
def batch(model_path):
    """One GRPO batch with old_log_probs computed at the initial weights."""
    worker = make_actor(compose_config(model_path), sfpo=False)
    return with_old_log_probs(worker, make_batch(8, seed=0))


def assert_params_close(actual: dict, expected: dict, **tol):
    assert actual.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], msg=lambda m, n=name: f"{n}: {m}", **tol)


def assert_params_moved(after: dict, before: dict):
    moved = sum((after[n] - before[n]).norm() ** 2 for n in before) ** 0.5
    assert moved > 1e-3, "the update did not change the parameters: the comparison would be vacuous"


def run_update(worker, batch, **controls):
    from verl.utils import tensordict_utils as tu

    output = worker.update_actor(update_batch(batch, mini_batch_size=MINI_BATCH, **controls))
    return tu.get(output, "metrics")


@pytest.mark.parametrize("inner_steps", [1, 3])
def test_alpha_one_equals_k_plus_one_epochs(model_path, batch, inner_steps):
    config = compose_config(model_path)
    sfpo = make_actor(config, sfpo=True)
    stock = make_actor(config, sfpo=False)
    before = full_params(stock)

    run_update(sfpo, batch, sfpo_alpha=1.0, sfpo_inner_steps=inner_steps)
    run_update(stock, batch, epochs=inner_steps + 1)

    assert_params_moved(full_params(stock), before)
    assert_params_close(full_params(sfpo), full_params(stock), rtol=0, atol=0)


@pytest.mark.parametrize(("alpha", "inner_steps"), [(0.0, 3), (0.8, 0)])
def test_sfpo_off_equals_one_grpo_pass(model_path, batch, alpha, inner_steps):
    config = compose_config(model_path)
    sfpo = make_actor(config, sfpo=True)
    stock = make_actor(config, sfpo=False)
    before = full_params(stock)

    metrics = run_update(sfpo, batch, sfpo_alpha=alpha, sfpo_inner_steps=inner_steps)
    run_update(stock, batch)

    assert_params_moved(full_params(stock), before)
    assert_params_close(full_params(sfpo), full_params(stock), rtol=0, atol=0)
    assert metrics["sfpo/active"] == 0.0


@pytest.mark.parametrize("anchor_device", ["param", "cpu"])
def test_general_alpha_equals_hand_reposition_then_one_pass(model_path, batch, anchor_device):
    alpha, inner_steps = 0.5, 2
    config = compose_config(model_path)
    sfpo = make_actor(config, sfpo=True)
    stock = make_actor(config, sfpo=False)

    # Reference with verl's stock worker: K epochs, hand reposition, one more pass. The
    # stock worker keeps its optimizer across calls, so Adam's state carries as in SFPO.
    theta0 = full_params(stock)
    run_update(stock, batch, epochs=inner_steps)
    theta_k = full_params(stock)
    with torch.no_grad():
        for name, p in stock.actor.engine.module.named_parameters():
            local = p.to_local() if isinstance(p, DTensor) else p
            local.copy_(theta0[name] + alpha * (theta_k[name] - theta0[name]))
    run_update(stock, batch)

    metrics = run_update(
        sfpo, batch, sfpo_alpha=alpha, sfpo_inner_steps=inner_steps, sfpo_anchor_device=anchor_device
    )

    assert_params_moved(theta_k, theta0)
    assert_params_close(full_params(sfpo), full_params(stock), **NEAR_EXACT)
    expected_norm = sum((theta_k[n] - theta0[n]).square().sum() for n in theta0).sqrt().item()
    assert metrics["sfpo/fast_displacement_norm"] == pytest.approx(expected_norm, rel=1e-5)
    # the step's actor metrics are the slow pass's: one entry per mini-batch of one pass
    assert len(metrics["actor/pg_loss"]) == 8 // MINI_BATCH
    assert metrics["sfpo/active"] == 1.0 and metrics["sfpo/alpha"] == alpha
    assert {"sfpo/fast_last_pg_loss", "sfpo/fast_last_ppo_kl", "sfpo/timing_s/fast"} <= metrics.keys()


def test_without_slow_correction_equals_k_epochs_then_hand_reposition(model_path, batch):
    alpha, inner_steps = 0.5, 2
    # A decaying LR from step 1 on: a scheduler stepped by the wrong pass changes the
    # parameters, not only the scheduler's counter.
    config = compose_config(model_path, ["actor_rollout_ref.actor.optim.lr_scheduler_type=cosine"])
    sfpo = make_actor(config, sfpo=True)
    stock = make_actor(config, sfpo=False)
    for step in (1, 2):
        # Reference with verl's stock worker: K epochs, hand reposition, and nothing else.
        theta0 = full_params(stock)
        stock_metrics = run_update(stock, batch, epochs=inner_steps)
        theta_k = full_params(stock)
        with torch.no_grad():
            for name, p in stock.actor.engine.module.named_parameters():
                local = p.to_local() if isinstance(p, DTensor) else p
                local.copy_(theta0[name] + alpha * (theta_k[name] - theta0[name]))

        metrics = run_update(
            sfpo, batch, sfpo_alpha=alpha, sfpo_inner_steps=inner_steps, sfpo_slow_correction=False
        )

        assert_params_moved(theta_k, theta0)
        assert_params_close(full_params(sfpo), full_params(stock), **NEAR_EXACT)
        assert sfpo.actor.engine.lr_scheduler.last_epoch == stock.actor.engine.lr_scheduler.last_epoch == step
        # the step's actor metrics are the last fast pass's: the stock run's last epoch
        per_pass = 8 // MINI_BATCH
        assert metrics["actor/pg_loss"] == pytest.approx(stock_metrics["actor/pg_loss"][-per_pass:], rel=1e-4)
        assert metrics["lr"] == stock_metrics["lr"]
        assert metrics["sfpo/slow_correction"] == 0.0 and "sfpo/timing_s/slow" not in metrics


def test_lr_scheduler_steps_once_per_training_step(model_path, batch):
    schedule = [
        "actor_rollout_ref.actor.optim.lr_scheduler_type=cosine",
        "actor_rollout_ref.actor.optim.lr_warmup_steps=4",
    ]
    config = compose_config(model_path, schedule)
    sfpo = make_actor(config, sfpo=True)
    stock = make_actor(config, sfpo=False)
    for step in (1, 2):
        metrics = run_update(sfpo, batch, sfpo_alpha=0.5, sfpo_inner_steps=3)
        run_update(stock, batch)
        assert sfpo.actor.engine.lr_scheduler.last_epoch == step
        assert metrics["lr"] == [stock.actor.engine.lr_scheduler.get_last_lr()[0]]


def test_anchor_is_one_fp32_copy_and_released_after_the_step(model_path, batch, monkeypatch):
    snapshots: list[weakref.ref] = []

    class TrackedAnchor(sfpo_worker.ParameterAnchor):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            snapshots.extend(weakref.ref(t) for t in self._snapshot)

    monkeypatch.setattr(sfpo_worker, "ParameterAnchor", TrackedAnchor)
    sfpo = make_actor(compose_config(model_path), sfpo=True)
    local_bytes = sum(
        p.to_local().numel() * 4 for p in sfpo.actor.engine.module.parameters() if p.requires_grad
    )
    metrics = run_update(sfpo, batch, sfpo_alpha=0.5, sfpo_inner_steps=1)
    gc.collect()

    assert metrics["sfpo/anchor_bytes"] == local_bytes
    assert snapshots and all(ref() is None for ref in snapshots), "anchor tensors still alive after the step"


def test_param_and_optimizer_offload_give_the_same_step(model_path, batch):
    offload = ["actor_rollout_ref.actor.fsdp_config.param_offload=true",
               "actor_rollout_ref.actor.fsdp_config.optimizer_offload=true"]
    plain = make_actor(compose_config(model_path), sfpo=True)
    offloaded = make_actor(compose_config(model_path, offload), sfpo=True)
    for worker in (plain, offloaded):
        run_update(worker, batch, sfpo_alpha=0.5, sfpo_inner_steps=2)
    assert_params_close(full_params(offloaded), full_params(plain), rtol=0, atol=0)


def _rank_main(rank: int, world_size: int, port: int, model_path: str, batch_path: str, out_path: str):
    set_dist_env(rank, world_size, port)
    batch = torch.load(batch_path, weights_only=False)
    # interleave so that each global mini-batch holds the same rows as on one rank
    per_rank_mb = MINI_BATCH // world_size
    rows = [i for start in range(0, len(batch), MINI_BATCH)
            for i in range(start + rank * per_rank_mb, start + (rank + 1) * per_rank_mb)]
    worker = make_actor(compose_config(model_path), sfpo=True)
    metrics = run_update(worker, batch[torch.tensor(rows)], sfpo_alpha=0.5, sfpo_inner_steps=2)
    params = full_params(worker)
    if rank == 0:
        torch.save(params, out_path)
        with open(out_path + ".json", "w") as f:
            json.dump({"norm": metrics["sfpo/fast_displacement_norm"]}, f)
    torch.distributed.destroy_process_group()


def test_two_gloo_ranks_equal_one_rank(model_path, batch, tmp_path):
    one_rank = make_actor(compose_config(model_path), sfpo=True)
    metrics = run_update(one_rank, batch, sfpo_alpha=0.5, sfpo_inner_steps=2)

    batch_path, out_path = str(tmp_path / "batch.pt"), str(tmp_path / "two_ranks.pt")
    torch.save(batch, batch_path)
    mp.start_processes(
        _rank_main, args=(2, free_port(), str(model_path), batch_path, out_path), nprocs=2, start_method="spawn"
    )

    assert_params_close(torch.load(out_path), full_params(one_rank), **NEAR_EXACT)
    with open(out_path + ".json") as f:
        assert json.load(f)["norm"] == pytest.approx(metrics["sfpo/fast_displacement_norm"], rel=1e-5)


# Actor-side verl features a GRPO config may carry. SFPO runs verl's own pass K+1 times, so each
# must compose exactly: alpha = 1 equals K+1 stock update passes and alpha = 0 one stock pass, bit for bit.
ACTOR_FEATURES = {
    "kl_loss": (["actor_rollout_ref.actor.use_kl_loss=true", "actor_rollout_ref.actor.kl_loss_coef=0.5",
                 "actor_rollout_ref.actor.kl_loss_type=low_var_kl"], {}),
    "dynamic_bsz": (["actor_rollout_ref.actor.use_dynamic_bsz=true",
                     "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=24"], {}),
    "gradient_checkpointing": (["actor_rollout_ref.model.enable_gradient_checkpointing=true"], {}),
    "dapo_loss": (["actor_rollout_ref.actor.clip_ratio_high=0.28",
                   "actor_rollout_ref.actor.loss_agg_mode=token-mean"], {}),
    "ppo_epochs_2_shuffle": ([], {"epochs": 2, "shuffle": True}),
}


@pytest.fixture(scope="module")
def batch_with_ref(batch):
    """The batch plus reference-model log-probs (what verl adds when use_kl_loss is on)."""
    gen = torch.Generator().manual_seed(1)
    with_ref = batch.clone()
    noise = 0.3 * torch.randn(batch["old_log_probs"].shape, generator=gen)
    with_ref["ref_log_prob"] = (batch["old_log_probs"] + noise) * batch["response_mask"]
    return with_ref


@pytest.mark.parametrize("feature", ACTOR_FEATURES)
def test_actor_features_compose_exactly(model_path, batch_with_ref, feature):
    overrides, controls = ACTOR_FEATURES[feature]
    epochs = controls.get("epochs", 1)
    shuffle = controls.get("shuffle", False)
    config = compose_config(model_path, overrides)
    inner_steps = 2

    sfpo, stock = make_actor(config, sfpo=True), make_actor(config, sfpo=False)
    before = full_params(stock)
    metrics = run_update(sfpo, batch_with_ref, sfpo_alpha=1.0, sfpo_inner_steps=inner_steps, epochs=epochs, shuffle=shuffle)
    run_update(stock, batch_with_ref, epochs=(inner_steps + 1) * epochs, shuffle=shuffle)
    assert_params_moved(full_params(stock), before)
    assert_params_close(full_params(sfpo), full_params(stock), rtol=0, atol=0)
    assert metrics["sfpo/active"] == 1.0
    if "use_kl_loss=true" in " ".join(overrides):
        assert "kl_loss" in metrics  # the trainer logs it as actor/kl_loss

    sfpo_off, stock_one = make_actor(config, sfpo=True), make_actor(config, sfpo=False)
    run_update(sfpo_off, batch_with_ref, sfpo_alpha=0.0, sfpo_inner_steps=inner_steps, epochs=epochs, shuffle=shuffle)
    run_update(stock_one, batch_with_ref, epochs=epochs, shuffle=shuffle)
    assert_params_close(full_params(sfpo_off), full_params(stock_one), rtol=0, atol=0)


def test_shuffle_gives_every_pass_a_fresh_order(model_path, batch):
    """With shuffle on, the passes continue verl's stream of epoch permutations (alpha = 1 is K+1
    shuffled stock epochs, above); the check that this differs from replaying one order K+1 times."""
    config = compose_config(model_path)
    fresh, replayed = make_actor(config, sfpo=True), make_actor(config, sfpo=False)
    run_update(fresh, batch, sfpo_alpha=1.0, sfpo_inner_steps=2, shuffle=True)
    for _ in range(3):  # one stock pass per call: each call draws the same first permutation
        run_update(replayed, batch, shuffle=True)
    moved = sum((full_params(fresh)[n] - full_params(replayed)[n]).norm() ** 2 for n in full_params(fresh)) ** 0.5
    assert moved > 1e-4, "every pass walked the batch in the same order"
