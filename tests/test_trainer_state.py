"""SFPOTrainer's driver-side logic: alpha per step, the switch fed from the update's
entropy, SFPO metrics renamed, and the switch state saved with every checkpoint and
restored on resume. verl's own checkpoint/update calls are replaced by recorders here;
the end-to-end test drives them for real.

Runs on both verl lines: the trainer SFPOTrainer extends is verl's v1 PPOTrainerSync (0.9.x),
whose `_update_actor(batch, metrics)` sends `batch.extra_info` and fills `metrics`, or the v0
RayPPOTrainer (0.8.x), whose `_update_actor(batch)` sends `batch.meta_info` and returns the
worker's unreduced metrics in a DataProto."""

import json
from types import SimpleNamespace

import pytest
from hydra import compose, initialize_config_dir

from sfpo_verl.core import verl_seams
from sfpo_verl.core.trainer.config import CONFIG_DIR
from sfpo_verl.core.trainer.sfpo_trainer import STATE_FILE, SFPOTrainer, build_controller

V0 = verl_seams.uses_v0_trainer()
VerlTrainer = verl_seams.trainer_base()


class FakeBatch:
    def __init__(self):
        self.extra_info = {}  # what 0.9.x sends to the worker
        self.meta_info = {}  # what 0.8.x sends

    @property
    def sent(self) -> dict:
        return self.meta_info if V0 else self.extra_info


def make_trainer(tmp_path, *overrides):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        config = compose("sfpo_trainer", overrides=[f"trainer.default_local_dir={tmp_path}", *overrides])
    trainer = SFPOTrainer.__new__(SFPOTrainer)  # skip verl's set-up: no workers here
    trainer.config = config
    trainer.sfpo = build_controller(config.algorithm)
    return trainer


@pytest.fixture
def fake_verl(monkeypatch):
    """verl's update/ckpt calls: the update returns the worker's metrics with verl's prefix."""
    sent = []

    def worker_metrics(self, batch):
        return {"actor/entropy_loss": self.next_entropy, "actor/sfpo/alpha": batch.sent["sfpo_alpha"]}

    def update_actor_v1(self, batch, metrics):
        sent.append(dict(batch.sent))
        metrics.update(worker_metrics(self, batch))
        return batch

    def update_actor_v0(self, batch):
        sent.append(dict(batch.sent))
        # unreduced, as verl 0.8.x returns them: one value per mini-batch
        unreduced = {key: [value, value] for key, value in worker_metrics(self, batch).items()}
        return SimpleNamespace(meta_info={"metrics": unreduced})

    def load_checkpoint(self):
        self.global_steps = self.resume_step

    monkeypatch.setattr(VerlTrainer, "_update_actor", update_actor_v0 if V0 else update_actor_v1)
    monkeypatch.setattr(VerlTrainer, "_save_checkpoint", lambda self: None)
    monkeypatch.setattr(VerlTrainer, "_load_checkpoint", load_checkpoint)
    return sent


def run_steps(trainer, entropies, first_step=1):
    logged = []
    for step, entropy in enumerate(entropies, first_step):
        trainer.global_steps, trainer.next_entropy = step, entropy
        if V0:
            metrics = trainer._update_actor(FakeBatch()).meta_info["metrics"]
        else:
            metrics = {}
            trainer._update_actor(FakeBatch(), metrics)
        logged.append(metrics)
    return logged


def test_alpha_and_k_go_to_the_worker_and_metrics_are_renamed(tmp_path, fake_verl):
    trainer = make_trainer(tmp_path, "algorithm.sfpo.alpha=0.7", "algorithm.sfpo.inner_steps=2")
    (metrics,) = run_steps(trainer, [1.0])
    assert fake_verl[0] == {
        "sfpo_alpha": 0.7, "sfpo_inner_steps": 2, "sfpo_anchor_device": "param", "sfpo_slow_correction": True
    }
    assert metrics["sfpo/alpha"] == 0.7 and "actor/sfpo/alpha" not in metrics
    assert metrics["sfpo/switch_fired"] == 0.0


def test_slow_correction_switch_goes_to_the_worker(tmp_path, fake_verl):
    trainer = make_trainer(tmp_path, "algorithm.sfpo.slow_correction=false")
    run_steps(trainer, [1.0, 1.0])
    assert [sent["sfpo_slow_correction"] for sent in fake_verl] == [False, False]


def test_grpo_arm_sends_alpha_zero_and_has_no_switch(tmp_path, fake_verl):
    trainer = make_trainer(tmp_path, "algorithm.name=grpo")
    run_steps(trainer, [1.0, 5.0, 9.0])
    assert [sent["sfpo_alpha"] for sent in fake_verl] == [0.0, 0.0, 0.0]
    assert trainer.sfpo.switch is None


def test_switch_fires_from_update_entropy_and_alpha_stays_zero(tmp_path, fake_verl):
    trainer = make_trainer(tmp_path, "algorithm.sfpo.entropy_switch.window=3")
    logged = run_steps(trainer, [1.0, 1.01, 0.99, 1.0, 3.0, 1.0, 1.0])
    alphas = [sent["sfpo_alpha"] for sent in fake_verl]
    assert alphas == [0.8] * 5 + [0.0, 0.0]  # fires at step 5, SFPO off from step 6
    assert logged[4]["sfpo/switch_fired"] == 1.0 and "sfpo/entropy_zscore" in logged[4]


def test_checkpoint_saves_switch_state_and_resume_restores_it(tmp_path, fake_verl):
    trainer = make_trainer(tmp_path, "algorithm.sfpo.entropy_switch.window=3")
    run_steps(trainer, [1.0, 1.01, 0.99, 1.0, 3.0])
    (tmp_path / "global_step_5").mkdir()
    trainer._save_checkpoint()
    saved = json.loads((tmp_path / "global_step_5" / STATE_FILE).read_text())
    assert saved["global_step"] == 5 and saved["switch"]["fired"] is True

    resumed = make_trainer(tmp_path, "algorithm.sfpo.entropy_switch.window=3")
    resumed.resume_step = 5
    resumed._load_checkpoint()
    assert resumed.sfpo.switch_fired
    run_steps(resumed, [1.0], first_step=6)
    assert fake_verl[-1]["sfpo_alpha"] == 0.0


def test_resume_without_state_says_so(tmp_path, fake_verl, capsys):
    trainer = make_trainer(tmp_path)
    trainer.resume_step = 5
    trainer._load_checkpoint()
    assert "resuming without SFPO state" in capsys.readouterr().out
    assert not trainer.sfpo.switch_fired


@pytest.mark.parametrize(("overrides", "requested"), [((), True), (("algorithm.name=grpo",), False)])
def test_update_entropy_is_requested_when_the_switch_is_on(tmp_path, monkeypatch, overrides, requested):
    monkeypatch.setattr(VerlTrainer, "__init__", lambda self, config, **kwargs: setattr(self, "config", config))
    config = make_trainer(tmp_path, *overrides).config
    SFPOTrainer(config)
    assert config.actor_rollout_ref.actor.calculate_entropy is requested
