"""The SFPO actor update inside verl's engine workers (verl 0.8.x and 0.9.x).

`SFPOTrainingWorker.train_mini_batch` is the whole SFPO step, top to bottom:

    snapshot theta0 -> K fast passes -> reposition theta0 + alpha (thetaK - theta0) -> 1 slow pass

where one pass is verl's own `TrainingWorker.train_mini_batch` (every mini-batch x
ppo_epochs, one optimizer step per mini-batch). The driver decides alpha and K each step
and sends them with the batch (`sfpo_alpha`, `sfpo_inner_steps`); with alpha = 0 or K = 0
the step is verl's plain pass, unchanged. `sfpo_slow_correction=False` drops the slow pass
(the paper's "without slow correction" ablation).

With `actor.shuffle=true` the passes continue one stream of epoch orders, the stream verl's
own iterator would draw for (K+1) x ppo_epochs epochs: every epoch of every pass gets a fresh
permutation, and alpha = 1 stays exactly K+1 stock update passes. (The authors' verl 0.2 actor
never shuffled: every pass walked the batch in the same order, which shuffle=false, verl's
default, reproduces.)
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager

import ray
import torch
from tensordict import TensorDict
from torch.distributed.tensor import DTensor
from verl.single_controller.base.decorator import Dispatch, make_nd_compute_dataproto_dispatch_fn, register
from verl.utils import tensordict_utils as tu
from verl.utils.device import get_device_name, get_torch_device
from verl.utils.metric import reduce_metrics
from verl.workers.engine_workers import ActorRolloutRefWorker, TrainingWorker

from sfpo_verl.core import verl_seams
from sfpo_verl.core.algorithm import ParameterAnchor
from sfpo_verl.core.worker_setup import run_worker_setup

# Step controls the driver adds to the batch (popped before verl sees the batch).
ALPHA_KEY = "sfpo_alpha"
INNER_STEPS_KEY = "sfpo_inner_steps"
ANCHOR_DEVICE_KEY = "sfpo_anchor_device"
SLOW_CORRECTION_KEY = "sfpo_slow_correction"


class SFPOTrainingWorker(TrainingWorker):
    """verl's TrainingWorker whose update stage runs the SFPO step when alpha > 0 and K > 0."""

    _hold_lr_scheduler = False

    @register(dispatch_mode=make_nd_compute_dataproto_dispatch_fn(mesh_name="train"), blocking=False)
    def train_mini_batch(self, data: TensorDict) -> TensorDict:
        alpha = float(tu.pop(data, key=ALPHA_KEY, default=0.0))
        inner_steps = int(tu.pop(data, key=INNER_STEPS_KEY, default=0))
        anchor_device = tu.pop(data, key=ANCHOR_DEVICE_KEY, default="param")
        slow_correction = bool(tu.pop(data, key=SLOW_CORRECTION_KEY, default=True))
        settings = {"sfpo/inner_steps": inner_steps, "sfpo/slow_correction": float(slow_correction)}

        if alpha == 0.0 or inner_steps == 0:
            output = super().train_mini_batch(data)
            return _with_metrics(output, {"sfpo/active": 0.0, "sfpo/alpha": 0.0, **settings})

        disable_auto_offload = tu.pop(data, key="disable_auto_offload", default=False)
        passes = inner_steps + int(slow_correction)
        pass_loaders = self._pass_dataloader_kwargs(data, passes)
        timings = {}
        # One train_mode context around all passes: with param/optimizer offload the
        # weights and Adam state stay on the device for the whole step; inner passes run
        # with auto-offload disabled (contexts do not nest).
        with self.engine.train_mode(disable_auto_offload=disable_auto_offload):
            with _timed(timings, "sfpo/timing_s/snapshot"):
                local_params = _local_shards(self.engine.module)
                anchor = ParameterAnchor(local_params, device="cpu" if anchor_device == "cpu" else None)
                anchor_bytes, anchor_accelerator_bytes = anchor.nbytes, anchor.accelerator_nbytes

            # Stage I: K fast passes. The LR schedule advances once per training step, at the
            # end of the step's last pass: the slow pass, or without it the last fast pass.
            with _timed(timings, "sfpo/timing_s/fast"):
                for k in range(inner_steps):
                    ends_step = not slow_correction and k == inner_steps - 1
                    with self._lr_scheduler_held(not ends_step):
                        fast_output = super().train_mini_batch(_pass_data(data, pass_loaders[k]))

            # Stage II: reposition theta <- theta0 + alpha (thetaK - theta0), shard-locally.
            with _timed(timings, "sfpo/timing_s/reposition"):
                sq_displacement = anchor.reposition_(alpha)
                anchor.release()
                displacement_norm = _global_norm(sq_displacement, self.engine.module)

            # Stage III: one slow pass from the repositioned weights; its metrics are the step's.
            # Without slow correction the step ends at the reposition, reporting the last fast pass.
            if slow_correction:
                with _timed(timings, "sfpo/timing_s/slow"):
                    output = super().train_mini_batch(_pass_data(data, pass_loaders[inner_steps]))
            else:
                output = fast_output

        sfpo_metrics = {
            "sfpo/active": 1.0,
            "sfpo/alpha": alpha,
            **settings,
            "sfpo/fast_displacement_norm": displacement_norm,
            "sfpo/anchor_bytes": anchor_bytes,
            "sfpo/anchor_accelerator_bytes": anchor_accelerator_bytes,
            **timings,
        }
        if fast_output is not None:
            fast_metrics = reduce_metrics(dict(tu.get(fast_output, "metrics")))
            for name in ("pg_loss", "ppo_kl"):
                if f"actor/{name}" in fast_metrics:
                    sfpo_metrics[f"sfpo/fast_last_{name}"] = float(fast_metrics[f"actor/{name}"])
        return _with_metrics(output, sfpo_metrics)

    @register(dispatch_mode=make_nd_compute_dataproto_dispatch_fn(mesh_name="train"), blocking=False)
    def train_batch(self, data: TensorDict) -> TensorDict:
        if self._hold_lr_scheduler:
            tu.assign_non_tensor(data, **{verl_seams.UPDATE_LR_SCHEDULER_KEY: False})
        return super().train_batch(data)

    def _pass_dataloader_kwargs(self, data: TensorDict, passes: int) -> list[dict]:
        """verl's `dataloader_kwargs` for each of the step's passes. With shuffle on, pass k
        replays epochs k*E .. (k+1)*E-1 of the order stream verl's iterator draws (same seed,
        same generator) for passes*E epochs, so each epoch is a fresh permutation."""
        dataloader_kwargs = dict(tu.get(data, "dataloader_kwargs", default={}))
        if not dataloader_kwargs.pop("shuffle", False):
            return [dataloader_kwargs] * passes
        epochs = tu.get(data, "epochs", default=1)
        rows = data.shape[0]
        order_stream = tu.make_iterator(
            TensorDict({"row": torch.arange(rows)}, batch_size=[rows]),
            mini_batch_size=rows,  # one item per epoch: the epoch's whole permutation
            epochs=passes * epochs,
            seed=tu.get(data, "seed", default=42) + self.engine.get_data_parallel_rank(),
            dataloader_kwargs={**dataloader_kwargs, "shuffle": True},
        )
        orders = [item["row"] for item in order_stream]
        return [
            {**dataloader_kwargs, "sampler": _EpochOrders(orders[k * epochs : (k + 1) * epochs])}
            for k in range(passes)
        ]

    @contextmanager
    def _lr_scheduler_held(self, hold: bool):
        """Keep the passes run inside from stepping the LR scheduler (when `hold`)."""
        self._hold_lr_scheduler = hold
        try:
            yield
        finally:
            self._hold_lr_scheduler = False


class SFPOActorRolloutRefWorker(ActorRolloutRefWorker):
    """verl's hybrid actor/rollout/ref worker with the SFPO update stage as its actor."""

    actor_worker_cls = SFPOTrainingWorker  # verl 0.9.x builds its actor from this (seam 3)

    def __init__(self, *args, **kwargs):
        run_worker_setup()  # what the device layer needs first (the CPU platform: its gloo group)
        super().__init__(*args, **kwargs)
        _report_placement(self.role, self.rank, self.world_size)

    if not verl_seams.has_actor_worker_cls():

        @register(dispatch_mode=Dispatch.ONE_TO_ALL)
        def init_model(self):
            # verl 0.8.x builds a plain TrainingWorker as the actor (seam 3): make it SFPO's.
            super().init_model()
            verl_seams.adopt_actor_class(self, SFPOTrainingWorker)


def _report_placement(role: str, rank: int, world_size: int) -> None:
    """One line per trainer process: its Ray node, and whether verl loaded this plugin there.
    verl hides a failed plugin load; a node without this package installed says "no" here."""
    node_id = ray.get_runtime_context().get_node_id() if ray.is_initialized() else "none"
    loaded = getattr(sys.modules.get("sfpo_verl.plugin"), "LOADED", False)
    print(
        f"[sfpo] {role} rank {rank}/{world_size} on Ray node {node_id}: "
        f"verl loaded the sfpo_verl plugin: {'yes' if loaded else 'no'}; platform: {get_device_name()}",
        flush=True,
    )


class _EpochOrders(torch.utils.data.Sampler):
    """A sampler that yields the given row orders, one per epoch, in turn."""

    def __init__(self, orders: list[torch.Tensor]):
        self._orders = iter(orders)
        self._rows = len(orders[0])

    def __iter__(self):
        return iter(next(self._orders).tolist())

    def __len__(self) -> int:
        return self._rows


def _pass_data(data: TensorDict, dataloader_kwargs: dict) -> TensorDict:
    """A shallow copy for one verl pass: verl pops the control keys from what it gets."""
    pass_data = data.copy()
    tu.assign_non_tensor(pass_data, disable_auto_offload=True, dataloader_kwargs=dataloader_kwargs)
    return pass_data


def _local_shards(module: torch.nn.Module) -> list[torch.Tensor]:
    """The rank's own storage of every trainable parameter (FSDP2 DTensor local shard,
    FSDP1 flat shard, or the tensor itself)."""
    return [
        p.to_local() if isinstance(p, DTensor) else p.data for p in module.parameters() if p.requires_grad
    ]


def _global_norm(local_sq_sum: torch.Tensor, module: torch.nn.Module) -> float:
    """sqrt of the sum of squares over all shards: reduced over the mesh dimensions that
    shard the parameters (replicas hold equal copies and are counted once)."""
    if torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
        first = next(p for p in module.parameters() if p.requires_grad)
        if isinstance(first, DTensor):
            for dim, placement in enumerate(first.placements):
                if placement.is_shard():
                    torch.distributed.all_reduce(local_sq_sum, group=first.device_mesh.get_group(dim))
        else:
            torch.distributed.all_reduce(local_sq_sum)
    return local_sq_sum.sqrt().item()


@contextmanager
def _timed(timings: dict, name: str):
    device = get_torch_device()
    device.synchronize()
    start = time.perf_counter()
    yield
    device.synchronize()
    timings[name] = time.perf_counter() - start


def _with_metrics(output: TensorDict | None, extra: dict) -> TensorDict | None:
    """Add SFPO metrics to a pass's output (only ranks that return outputs have one)."""
    if output is not None:
        tu.get(output, "metrics").update(extra)
    return output


__all__ = [
    "ALPHA_KEY",
    "ANCHOR_DEVICE_KEY",
    "INNER_STEPS_KEY",
    "SLOW_CORRECTION_KEY",
    "SFPOActorRolloutRefWorker",
    "SFPOTrainingWorker",
]
