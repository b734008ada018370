"""Bad input fails at start-up, before Ray or any model starts, naming key, value and what is allowed."""

import logging
import subprocess
import sys

import pytest
import ray
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from processes import run_at_once
from verl.utils.config import omega_conf_to_dataclass

from sfpo_verl.core.trainer.config import CONFIG_DIR, SFPO_KEYS, SFPOAlgoConfig, SFPOConfigError, validate_sfpo_config
from sfpo_verl.main import run_sfpo


def compose_cfg(*overrides):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        return compose("sfpo_trainer", overrides=list(overrides))


def test_defaults_are_the_papers_and_algorithm_instantiates_strictly():
    algorithm = omega_conf_to_dataclass(compose_cfg().algorithm)
    assert isinstance(algorithm, SFPOAlgoConfig)
    assert algorithm.name == "sfpo" and algorithm.adv_estimator == "grpo"
    sfpo = algorithm.sfpo
    assert (sfpo.inner_steps, sfpo.alpha, sfpo.alpha_schedule, sfpo.anchor_device) == (3, 0.8, "constant", "param")
    assert sfpo.slow_correction is True
    switch = sfpo.entropy_switch
    assert (switch.enable, switch.window, switch.threshold, switch.two_sided) == (True, 30, 1.0, False)


def test_unknown_sfpo_key_is_rejected_by_hydra():
    with pytest.raises(Exception, match="inner_step"):
        compose_cfg("algorithm.sfpo.inner_step=3")


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("algorithm.sfpo.alpha=1.5", "algorithm.sfpo.alpha=1.5 is not allowed: a number in [0, 1]"),
        ("algorithm.sfpo.alpha=-0.1", "algorithm.sfpo.alpha=-0.1 is not allowed"),
        ("algorithm.sfpo.inner_steps=-1", "algorithm.sfpo.inner_steps=-1 is not allowed: an integer K >= 0"),
        ("algorithm.sfpo.entropy_switch.window=1", "algorithm.sfpo.entropy_switch.window=1 is not allowed: an integer >= 2"),
        ("algorithm.sfpo.entropy_switch.threshold=0", "algorithm.sfpo.entropy_switch.threshold=0 is not allowed: a number > 0"),
        ("algorithm.sfpo.alpha_schedule=cosine",
         "algorithm.sfpo.alpha_schedule='cosine' is not allowed: one of constant, linear, cutoff"),
        ("algorithm.sfpo.alpha_schedule=linear",
         "algorithm.sfpo.schedule_steps=None is not allowed: an integer >= 1 when algorithm.sfpo.alpha_schedule=linear"),
        ("algorithm.sfpo.alpha_schedule=cutoff", "algorithm.sfpo.schedule_steps=None is not allowed"),
        ("algorithm.sfpo.anchor_device=gpu", "algorithm.sfpo.anchor_device='gpu' is not allowed: one of param, cpu"),
        ("algorithm.name=ppo", "algorithm.name='ppo' is not allowed: one of sfpo, grpo"),
        pytest.param("trainer.use_v1=false", "trainer.use_v1=False is not allowed: true only",
                     marks=pytest.mark.verl09(reason="a verl 0.9.x trainer option")),
        pytest.param(
            "trainer.v1.trainer_mode=separate_async",
            "trainer.v1.trainer_mode='separate_async' is not allowed: sync only",
            marks=pytest.mark.verl09(reason="a verl 0.9.x trainer option"),
        ),
        ("actor_rollout_ref.actor.strategy=megatron",
         "actor_rollout_ref.actor.strategy='megatron' is not allowed: one of fsdp, fsdp2"),
    ],
)
def test_bad_input_is_refused_before_ray_starts(override, expected):
    config = compose_cfg(override)
    with pytest.raises(SFPOConfigError) as err:
        run_sfpo(config)
    assert expected in str(err.value)
    assert not ray.is_initialized()


# Wrong-typed values for every SFPO key: key, override value, the value as the message shows
# it. schedule_steps is checked under the default constant schedule, where it goes unused.
WRONG_TYPES = [
    ("algorithm.name", "1", "1"),
    ("algorithm.name", "null", "None"),
    ("algorithm.sfpo.inner_steps", "2.5", "2.5"),
    ("algorithm.sfpo.inner_steps", "x", "'x'"),
    ("algorithm.sfpo.inner_steps", "true", "True"),
    ("algorithm.sfpo.alpha", "abc", "'abc'"),
    ("algorithm.sfpo.alpha", "true", "True"),
    ("algorithm.sfpo.alpha", "null", "None"),
    ("algorithm.sfpo.alpha", "[0.5]", "[0.5]"),
    ("algorithm.sfpo.alpha_schedule", "1", "1"),
    ("algorithm.sfpo.alpha_schedule", "null", "None"),
    ("algorithm.sfpo.schedule_steps", "x", "'x'"),
    ("algorithm.sfpo.schedule_steps", "2.5", "2.5"),
    ("algorithm.sfpo.schedule_steps", "true", "True"),
    ("algorithm.sfpo.anchor_device", "0", "0"),
    ("algorithm.sfpo.anchor_device", "null", "None"),
    ("algorithm.sfpo.slow_correction", "maybe", "'maybe'"),
    ("algorithm.sfpo.slow_correction", "1", "1"),
    ("algorithm.sfpo.slow_correction", "null", "None"),
    ("algorithm.sfpo.entropy_switch.enable", "maybe", "'maybe'"),
    ("algorithm.sfpo.entropy_switch.enable", "0", "0"),
    ("algorithm.sfpo.entropy_switch.window", "x", "'x'"),
    ("algorithm.sfpo.entropy_switch.window", "2.5", "2.5"),
    ("algorithm.sfpo.entropy_switch.threshold", "abc", "'abc'"),
    ("algorithm.sfpo.entropy_switch.threshold", "null", "None"),
    ("algorithm.sfpo.entropy_switch.two_sided", "maybe", "'maybe'"),
    ("algorithm.sfpo.entropy_switch.two_sided", "null", "None"),
    ("cluster_check.enable", "maybe", "'maybe'"),
    ("cluster_check.placement_timeout_s", "soon", "'soon'"),
    ("cluster_check.placement_timeout_s", "0", "0"),
]


@pytest.mark.parametrize(("key", "value", "shown"), WRONG_TYPES)
def test_wrong_type_is_refused_with_key_value_and_what_is_allowed(key, value, shown):
    with pytest.raises(SFPOConfigError) as err:
        run_sfpo(compose_cfg(f"{key}={value}"))
    assert str(err.value) == f"{key}={shown} is not allowed: {SFPO_KEYS[key].allowed}"
    assert not ray.is_initialized()


def test_types_are_checked_where_the_value_goes_unused():
    with pytest.raises(SFPOConfigError, match="algorithm.sfpo.entropy_switch.window='x' is not allowed"):
        validate_sfpo_config(compose_cfg("algorithm.sfpo.entropy_switch.enable=false", "algorithm.sfpo.entropy_switch.window=x"))


def test_every_sfpo_key_is_type_checked_and_tested():
    config = compose_cfg()
    sfpo = OmegaConf.to_container(config.algorithm.sfpo)
    declared = {"algorithm.name"} | {
        f"algorithm.sfpo.{key}" for key in _leaf_keys(sfpo) if not key.endswith("_target_")
    } | {f"cluster_check.{key}" for key in _leaf_keys(OmegaConf.to_container(config.cluster_check))}
    assert set(SFPO_KEYS) == declared
    assert {key for key, _, _ in WRONG_TYPES} == declared


def _leaf_keys(section: dict, prefix: str = ""):
    for name, value in section.items():
        if isinstance(value, dict):
            yield from _leaf_keys(value, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("algorithm.sfpo=abc", "algorithm.sfpo='abc' is not allowed: a section of keys"),
        ("algorithm.sfpo.entropy_switch=null", "algorithm.sfpo.entropy_switch=None is not allowed: a section of keys"),
    ],
)
def test_a_section_replaced_by_a_value_is_refused(override, expected):
    with pytest.raises(SFPOConfigError) as err:
        validate_sfpo_config(compose_cfg(override))
    assert expected in str(err.value)


CLI_RUNS = {
    "wrong_type": ["algorithm.sfpo.alpha=abc"],
    "composed_config": ["--cfg", "job", "algorithm.name=sfpo", "algorithm.sfpo.alpha=0.9"],
    "out_of_range": ["algorithm.sfpo.alpha=2"],
}


@pytest.fixture(scope="module")
def cli() -> dict[str, subprocess.CompletedProcess]:
    """`python -m sfpo_verl.main` with each of CLI_RUNS' arguments, the three at once."""
    return run_at_once({name: [sys.executable, "-m", "sfpo_verl.main", *args] for name, args in CLI_RUNS.items()},
                       timeout_s=180)


def test_cli_wrong_type_names_the_key_and_exits_before_ray(cli):
    result = cli["wrong_type"]
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "sfpo_verl: algorithm.sfpo.alpha='abc' is not allowed: a number in [0, 1]" in result.stderr
    assert "could not convert" not in output and "Traceback" not in output
    # run_ppo prints its ray.init arguments, and Ray announces a local instance, when it starts
    assert "ray init kwargs" not in output and "Ray instance" not in output


def test_window_is_not_checked_when_the_switch_is_off():
    validate_sfpo_config(compose_cfg("algorithm.sfpo.entropy_switch.enable=false", "algorithm.sfpo.entropy_switch.window=1"))


def test_non_grpo_estimator_warns_but_runs(caplog):
    with caplog.at_level(logging.WARNING):
        validate_sfpo_config(compose_cfg("algorithm.adv_estimator=rloo"))
    assert "algorithm.adv_estimator=rloo" in caplog.text


def test_cli_prints_the_composed_sfpo_section(cli):
    result = cli["composed_config"]
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "name: sfpo" in out and "alpha: 0.9" in out and "inner_steps: 3" in out and "entropy_switch:" in out


def test_cli_bad_input_exits_with_the_message(cli):
    result = cli["out_of_range"]
    assert result.returncode != 0
    assert "algorithm.sfpo.alpha=2 is not allowed: a number in [0, 1]" in result.stderr


def test_missing_model_folder_is_refused_before_ray_starts(tmp_path):
    from sfpo_verl.core.preflight import RunInputError

    config = compose_cfg(f"actor_rollout_ref.model.path={tmp_path}/no_such_model")
    with pytest.raises(RunInputError, match="actor_rollout_ref.model.path"):
        run_sfpo(config)
    assert not ray.is_initialized()
