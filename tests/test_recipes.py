"""Every recipe's full Hydra config composes (so a misspelled or removed key fails here), carries
the paper's settings, and the arms differ only in algorithm.name; bad paths fail before launch.

Each recipe runs for real in bash with SFPO_PRINT_OVERRIDES=1, which makes it print its
overrides instead of starting the trainer; those are composed with Hydra against
sfpo_trainer.yaml, as `python -m sfpo_verl.main` does, and the sections verl instantiates as
dataclasses are instantiated strictly. The printed overrides of every recipe and arm are also
pinned, line for line, in tests/fixtures/recipes/, so a change to the overrides the recipes share
(paper_overrides in recipes/_common.sh) shows there as a diff.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException

import sfpo_verl
from sfpo_verl.paper.numbers import BENCHMARKS, TABLE1

pytestmark = pytest.mark.verl09(reason="the recipes use verl 0.9.1's config")

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
FIXTURES = ROOT / "tests" / "fixtures" / "recipes"
CONFIG_DIR = str(Path(sfpo_verl.__file__).parent / "core" / "trainer" / "config")

# recipe -> (paper model, max prompt, max response, alpha)
PAPER_RECIPES = {
    "run_qwen2.5_math_1.5b.sh": ("Qwen2.5-Math-1.5B", 1536, 2560, 0.8),
    "run_qwen2.5_math_7b.sh": ("Qwen2.5-Math-7B", 1536, 2560, 0.8),
    "run_deepseek_r1_distill_qwen_1.5b.sh": ("DeepSeek-R1-Distill-Qwen-1.5B", 2048, 6144, 0.8),
    "run_deepseek_r1_distill_qwen_7b.sh": ("DeepSeek-R1-Distill-Qwen-7B", 2048, 6144, 0.8),
    "run_qwen3_4b_base.sh": ("Qwen3-4B-Base", 2048, 6144, 0.9),
}
DAPO_RECIPE = "run_dapo_deepseek_r1_distill_qwen_1.5b.sh"
RECIPE_SETTINGS = {**PAPER_RECIPES, DAPO_RECIPE: PAPER_RECIPES["run_deepseek_r1_distill_qwen_1.5b.sh"]}
ALL_RECIPES = list(RECIPE_SETTINGS)
# The authors' vLLM memory share: 0.6 for Qwen2.5-Math, 0.7 for the others.
GPU_MEMORY_UTILIZATION = {recipe: 0.6 if "qwen2.5_math" in recipe else 0.7 for recipe in ALL_RECIPES}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A model directory and prepared data files that pass the recipes' checks (contents unused)."""
    root = tmp_path_factory.mktemp("recipe_inputs")
    (root / "model").mkdir()
    (root / "model" / "config.json").write_text("{}")
    (root / "data").mkdir()
    for name in ("train", *BENCHMARKS):
        (root / "data" / f"{name}.parquet").touch()
    return root


def recipe_env(inputs: Path, **extra: str) -> dict:
    env = {
        **os.environ,
        "SFPO_PRINT_OVERRIDES": "1",
        "MODEL_PATH": str(inputs / "model"),
        "DATA_DIR": str(inputs / "data"),
        "EXPERIMENT_NAME": "test_run",  # fixed, so the two arms' overrides can be compared
        "RUN_DIR": str(inputs / "run"),
        "PYTHON": sys.executable,  # it lists the paper's benchmarks (and would run the trainer)
    }
    env.update(extra)
    return env


def run_recipe(recipe: str, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(RECIPES / recipe), *args], env=env, capture_output=True, text=True, timeout=60)


def recipe_overrides(recipe: str, inputs: Path, *args: str, **env: str) -> list[str]:
    result = run_recipe(recipe, recipe_env(inputs, **env), *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


@pytest.fixture(scope="module")
def compose_overrides():
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        yield lambda overrides: compose("sfpo_trainer", overrides=overrides, return_hydra_config=True)


@pytest.fixture(scope="module")
def configs(inputs, compose_overrides):
    """(recipe, arm) -> composed config."""
    return {
        (recipe, algo): compose_overrides(recipe_overrides(recipe, inputs, ALGO=algo))
        for recipe in ALL_RECIPES
        for algo in ("grpo", "sfpo")
    }


@pytest.mark.parametrize("recipe", ALL_RECIPES)
def test_config_composes_and_instantiates_strictly(recipe, configs):
    from verl.utils.config import omega_conf_to_dataclass

    for algo in ("grpo", "sfpo"):
        config = configs[(recipe, algo)]
        actor = omega_conf_to_dataclass(config.actor_rollout_ref.actor)
        rollout = omega_conf_to_dataclass(config.actor_rollout_ref.rollout)
        algorithm = omega_conf_to_dataclass(config.algorithm)
        assert actor.engine.strategy == "fsdp2"
        assert (rollout.val_kwargs.n, rollout.val_kwargs.top_p) == (4, 0.7)
        assert algorithm.name == algo


@pytest.mark.parametrize("recipe", ALL_RECIPES)
def test_arms_differ_only_in_algorithm_name(recipe, inputs):
    grpo = recipe_overrides(recipe, inputs, ALGO="grpo")
    sfpo = recipe_overrides(recipe, inputs, ALGO="sfpo")
    differences = [(a, b) for a, b in zip(grpo, sfpo, strict=True) if a != b]
    assert differences == [("algorithm.name=grpo", "algorithm.name=sfpo")]


@pytest.mark.parametrize("algo", ["grpo", "sfpo"])
@pytest.mark.parametrize("recipe", ALL_RECIPES)
def test_overrides_are_the_committed_ones(recipe, algo, inputs):
    """Every line the recipe passes to the trainer, in order, as committed: a change to the shared
    overrides or to a recipe's own shows here. After an intended change, rewrite the files with
    SFPO_WRITE_RECIPE_FIXTURES=1 and review their diff."""
    printed = "".join(f"{line}\n" for line in recipe_overrides(recipe, inputs, ALGO=algo)).replace(str(inputs), "<inputs>")
    fixture = FIXTURES / f"{recipe.removesuffix('.sh')}.{algo}.txt"
    if os.environ.get("SFPO_WRITE_RECIPE_FIXTURES") == "1":
        fixture.write_text(printed)
    assert printed == fixture.read_text()


@pytest.mark.parametrize("recipe", ALL_RECIPES)
def test_paper_settings(recipe, configs, inputs):
    model, max_prompt, max_response, alpha = RECIPE_SETTINGS[recipe]
    config = configs[(recipe, "sfpo")]
    actor, rollout, trainer = config.actor_rollout_ref.actor, config.actor_rollout_ref.rollout, config.trainer
    assert model in TABLE1
    assert (config.data.max_prompt_length, config.data.max_response_length) == (max_prompt, max_response)
    assert (config.algorithm.sfpo.inner_steps, config.algorithm.sfpo.alpha) == (3, alpha)
    switch = config.algorithm.sfpo.entropy_switch
    assert (switch.enable, switch.window, switch.threshold) == (True, 30, 1.0)
    assert config.algorithm.adv_estimator == "grpo"
    assert config.algorithm.use_kl_in_reward is False and actor.use_kl_loss is False
    assert (config.data.train_batch_size, rollout.n, actor.ppo_mini_batch_size, actor.ppo_epochs) == (256, 8, 64, 1)
    assert (actor.optim.lr, actor.optim.lr_scheduler_type, actor.optim.weight_decay, actor.optim.clip_grad) == (
        1e-6,
        "constant",
        0.01,
        1.0,
    )
    assert (actor.entropy_coeff, actor.clip_ratio_low) == (0.001, 0.2)
    assert (rollout.name, rollout.temperature, rollout.top_p) == ("vllm", 1.0, 1.0)
    assert rollout.gpu_memory_utilization == GPU_MEMORY_UTILIZATION[recipe]
    assert (actor.use_dynamic_bsz, actor.ppo_max_token_len_per_gpu) == (True, 24000)
    assert (rollout.val_kwargs.do_sample, rollout.val_kwargs.temperature) == (True, 1.0)
    assert (trainer.total_training_steps, trainer.test_freq, trainer.save_freq) == (400, 5, 5)
    assert (trainer.nnodes, trainer.n_gpus_per_node) == (1, 8)
    assert config.reward.custom_reward_function.path == "pkg://sfpo_verl.paper.reward.math_reward"
    assert config.reward.custom_reward_function.reward_kwargs == {"format_score": 0.1}  # the authors' reward
    assert config.data.train_files == str(inputs / "data" / "train.parquet")
    assert list(config.data.val_files) == [str(inputs / "data" / f"{name}.parquet") for name in BENCHMARKS]
    assert config.actor_rollout_ref.model.path == str(inputs / "model")
    # where the analysis and evaluation commands find the run's outputs
    assert trainer.validation_data_dir == str(inputs / "run" / "val_generations")
    assert config.hydra.run.dir == str(inputs / "run")
    assert "file" in trainer.logger


@pytest.mark.parametrize("recipe", ALL_RECIPES)
def test_verl_calls_the_reward_with_the_papers_format_score(recipe, configs):
    from verl.trainer.ppo.reward import get_custom_reward_fn

    reward_fn = get_custom_reward_fn(configs[(recipe, "sfpo")])  # as verl's reward workers load it
    results = [
        reward_fn(data_source="aime24", solution_str=response, ground_truth="2", extra_info={})
        for response in ("So \\boxed{2}.", "So \\boxed{3}.", "So it is 2.")  # correct, boxed but wrong, no box
    ]
    assert [r["score"] for r in results] == [1.0, 0.1, 0.0]
    assert [r["acc"] for r in results] == [1.0, 0.0, 0.0]  # what validation and DAPO's filter read


def test_dapo_recipe_is_dapo(configs):
    config = configs[(DAPO_RECIPE, "sfpo")]
    assert config.actor_rollout_ref.actor.clip_ratio_high == 0.28
    assert config.actor_rollout_ref.actor.loss_agg_mode == "token-mean"
    assert (config.algorithm.filter_groups.enable, config.algorithm.filter_groups.metric) == (True, "acc")
    assert config.reward.reward_manager.name == "dapo"
    for recipe in PAPER_RECIPES:
        plain = configs[(recipe, "sfpo")]
        assert plain.actor_rollout_ref.actor.clip_ratio_high == 0.2
        assert plain.algorithm.filter_groups.enable is False and plain.reward.reward_manager.name == "naive"


def test_dapo_reward_manager_and_group_filter_accept_the_config(configs):
    from verl.experimental.reward_loop.reward_manager.dapo import DAPORewardManager

    from sfpo_verl.paper.reward import compute_score

    config = configs[(DAPO_RECIPE, "sfpo")]
    manager = DAPORewardManager(config, tokenizer=None, compute_score=compute_score)
    assert manager.overlong_buffer_cfg.enable and manager.max_resp_len == config.data.max_response_length
    assert 0 < manager.overlong_buffer_cfg.len < manager.max_resp_len
    # dynamic sampling filters on a key the reward returns
    assert config.algorithm.filter_groups.metric in compute_score("aime24", "\\boxed{1}", "1")


def test_command_line_overrides_come_last_and_win(inputs, compose_overrides):
    overrides = recipe_overrides(DAPO_RECIPE, inputs, "trainer.total_training_steps=20", "algorithm.sfpo.alpha=0.5")
    assert overrides[-2:] == ["trainer.total_training_steps=20", "algorithm.sfpo.alpha=0.5"]
    config = compose_overrides(overrides)
    assert (config.trainer.total_training_steps, config.algorithm.sfpo.alpha) == (20, 0.5)


def test_a_misspelled_key_fails_composition(inputs, compose_overrides):
    overrides = recipe_overrides("run_qwen3_4b_base.sh", inputs, "algorithm.sfpo.inner_step=2")
    with pytest.raises(ConfigCompositionException, match="inner_step"):
        compose_overrides(overrides)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"MODEL_PATH": "/no/such/model"}, "MODEL_PATH"),
        ({"DATA_DIR": "/no/such/data"}, "TRAIN_FILE"),
        ({"TRAIN_FILE": "/no/such/train.parquet"}, "TRAIN_FILE"),
        ({"VAL_FILES": "/no/such/aime24.parquet"}, "VAL_FILES"),
        ({"ALGO": "sfop"}, "ALGO"),
    ],
)
@pytest.mark.parametrize("recipe", ["run_qwen2.5_math_1.5b.sh", DAPO_RECIPE])
def test_bad_inputs_fail_before_launch_naming_the_variable(recipe, inputs, env, variable):
    # Without the print switch, and with a python that cannot start: only the checks can stop it.
    launch_env = recipe_env(inputs, **env, PYTHON="/no/such/python")
    del launch_env["SFPO_PRINT_OVERRIDES"]
    result = run_recipe(recipe, launch_env)
    assert result.returncode == 2
    assert result.stderr.startswith(f"recipe error: {variable}")
    assert result.stdout == ""
    assert not (inputs / "run").exists()  # nothing was set up for a run


def test_a_python_without_sfpo_verl_fails_before_launch(inputs):
    # The default validation files are the benchmarks sfpo_verl lists: PYTHON must import it.
    launch_env = recipe_env(inputs, PYTHON="/no/such/python")
    del launch_env["SFPO_PRINT_OVERRIDES"]
    result = run_recipe("run_qwen3_4b_base.sh", launch_env)
    assert result.returncode == 2
    assert result.stderr.startswith("recipe error: PYTHON='/no/such/python' cannot read the paper's benchmark list")
    assert result.stdout == ""
    assert not (inputs / "run").exists()


def test_a_recipes_own_override_replaces_the_shared_one_or_joins_its_section():
    script = f"""
        source {RECIPES / "_common.sh"}
        ALGO=sfpo ALPHA=0.8 TRAIN_FILE=t VAL_FILES='a b' MAX_PROMPT_LENGTH=1 MAX_RESPONSE_LENGTH=2 MODEL_PATH=m
        MAX_TOKENS_PER_GPU=3 ROLLOUT_TP=1 GPU_MEMORY_UTILIZATION=0.5 LOGGERS=l PROJECT_NAME=p EXPERIMENT_NAME=e
        NNODES=1 GPUS_PER_NODE=1 CHECKPOINTS_KEPT=1 RUN_DIR=r
        paper_overrides algorithm.sfpo.alpha=0.5 algorithm.new=1 +reward.x=1 +critic.y=2
        printf '%s\\n' "${{PAPER_OVERRIDES[@]}}"
    """
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    shared = FIXTURES.joinpath("run_qwen2.5_math_1.5b.sfpo.txt").read_text().splitlines()
    assert len(lines) == len(shared) + 3  # one replaced, three added
    assert lines[lines.index("algorithm.sfpo.entropy_switch.threshold=1.0") + 1] == "algorithm.new=1"
    assert "algorithm.sfpo.alpha=0.5" in lines and "algorithm.sfpo.alpha=0.8" not in lines
    assert lines[lines.index("+reward.custom_reward_function.reward_kwargs.format_score=0.1") + 1] == "+reward.x=1"
    assert lines[-1] == "+critic.y=2"  # a section the shared overrides lack: at the end


def test_readme_lists_every_recipe_with_the_papers_number():
    readme = (RECIPES / "README.md").read_text()
    for recipe, (model, *_) in PAPER_RECIPES.items():
        assert f"`{recipe}`" in readme
        assert f"{TABLE1[model].grpo_average:.2f}" in readme and f"{TABLE1[model].sfpo_average:.2f}" in readme
    assert f"`{DAPO_RECIPE}`" in readme and "49.30" in readme and "50.56" in readme


def test_recipes_are_valid_bash():
    for recipe in [*ALL_RECIPES, "_common.sh"]:
        subprocess.run(["bash", "-n", str(RECIPES / recipe)], check=True)
