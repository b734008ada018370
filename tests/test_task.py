"""The embedded task: disjoint verl-format splits graded by the math reward, the tokenizer,
and a deterministic build (the same weights from the same settings)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from sfpo_verl.cpu.task.arithmetic import REQUIRED_COLUMNS, Problem, all_problems, boxed, split_problems, write_datasets
from sfpo_verl.cpu.task.build import TaskPaths, TaskSettings, build_task
from sfpo_verl.cpu.task.model import ModelSize, build_model, prompt_ids, weights_digest
from sfpo_verl.cpu.task.tokenizer import build_tokenizer
from sfpo_verl.paper.reward import compute_score

TINY = ModelSize(hidden_size=16, intermediate_size=32, num_attention_heads=2)


def questions(df: pd.DataFrame) -> list[str]:
    return df["extra_info"].map(lambda e: e["question"]).tolist()


def test_splits_are_disjoint_verl_datasets_covering_every_problem(tmp_path):
    paths = write_datasets(tmp_path, split_problems(max_operand=3, val_fraction=0.2, seed=0))
    train, val = pd.read_parquet(paths["train"]), pd.read_parquet(paths["val"])
    assert set(REQUIRED_COLUMNS) <= set(train.columns) and set(REQUIRED_COLUMNS) <= set(val.columns)
    assert (len(train), len(val)) == (51, 13)  # 4^3 problems, a fifth held out
    assert not set(questions(train)) & set(questions(val))
    assert sorted(questions(train) + questions(val)) == sorted(p.question for p in all_problems(3))
    row = val.iloc[0]
    a, b, c = map(int, row["prompt"][0]["content"].split("+"))
    assert list(row["prompt"]) == [{"role": "user", "content": f"{a}+{b}+{c}"}]
    assert row["reward_model"]["ground_truth"] == str(a + b + c)
    assert row["data_source"] == "sfpo_arithmetic" and row["ability"] == "arithmetic"
    assert row["extra_info"]["split"] == "val"


def test_split_is_deterministic_given_the_seed():
    a, b, c = (split_problems(4, 0.2, seed) for seed in (3, 3, 4))
    assert a == b and a["val"] != c["val"]


def test_empty_tasks_and_splits_are_refused():
    with pytest.raises(ValueError, match="max_operand"):
        all_problems(0)
    for fraction in (0.0, 1.0):
        with pytest.raises(ValueError, match="val_fraction"):
            split_problems(2, fraction, seed=0)


@pytest.mark.parametrize(
    ("response", "accuracy"),
    [(boxed("12"), 1.0), (" \\boxed{12}\n", 1.0), (boxed("13"), 0.0), ("12", 0.0), ("\\boxed{1", 0.0), ("", 0.0)],
)
def test_the_math_reward_grades_the_tasks_responses(response, accuracy):
    assert compute_score("sfpo_arithmetic", response, Problem((3, 4, 5)).answer)["acc"] == accuracy


def test_tokenizer_round_trips_and_survives_save_and_load_beside_a_qwen2_config(tmp_path):
    tokenizer = build_tokenizer()
    model = build_model(tokenizer, TINY, seed=0)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    # transformers reloads a tokenizer beside a qwen2 config as Qwen2Tokenizer: it must not lose characters.
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    text = "<|im_start|>user\n3+7+8<|im_end|>\n<|im_start|>assistant\n\\boxed{18}<|im_end|>"
    assert reloaded.encode(text) == tokenizer.encode(text)
    assert len(reloaded.encode("\n", add_special_tokens=False)) == 1  # verl's Qwen prompt builder needs it
    assert len(reloaded.encode(boxed("18"), add_special_tokens=False)) == len(boxed("18"))  # one token a character
    ids = prompt_ids(reloaded, Problem((3, 4, 5)))
    assert reloaded.decode(ids) == "<|im_start|>user\n3+4+5<|im_end|>\n<|im_start|>assistant\n"
    answer = reloaded.encode(boxed("11"), add_special_tokens=False) + [reloaded.eos_token_id]
    assert reloaded.decode(answer, skip_special_tokens=True) == "\\boxed{11}"


def test_the_build_gives_the_same_weights_whatever_the_callers_threads_and_random_state(tmp_path):
    settings = TaskSettings(max_operand=3, pretrain_steps=20, model=TINY)
    threads = torch.get_num_threads()
    manifests = []
    for run, caller_threads in enumerate((2, 1)):
        torch.set_num_threads(caller_threads)
        torch.manual_seed(100 + run)  # the caller's random state must not reach the build
        manifests.append(build_task(tmp_path / str(run), settings, log=lambda *_: None))
        assert torch.get_num_threads() == caller_threads  # restored after the build
    torch.set_num_threads(threads)
    other_seed = build_task(tmp_path / "seed1", TaskSettings(max_operand=3, pretrain_steps=20, seed=1, model=TINY),
                            log=lambda *_: None)
    saved = AutoModelForCausalLM.from_pretrained(TaskPaths(tmp_path / "0").model)
    assert manifests[0]["weights_sha256"] == manifests[1]["weights_sha256"] == weights_digest(saved)
    assert other_seed["weights_sha256"] != manifests[0]["weights_sha256"]
    assert manifests[0]["start_accuracy"] == manifests[1]["start_accuracy"]
