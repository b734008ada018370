"""The embedded task: tokenizer, verl-format data, and the reward (malformed output scores 0)."""

from __future__ import annotations

import pandas as pd
import pytest
from transformers import AutoTokenizer

from sfpo_verl.cpu.task.arithmetic import REQUIRED_COLUMNS, Problem, all_problems, parse_answer, write_datasets
from sfpo_verl.cpu.task.model import ModelSize, build_model, prompt_ids
from sfpo_verl.cpu.task.reward import compute_score
from sfpo_verl.cpu.task.tokenizer import build_tokenizer


def test_datasets_have_verls_columns_and_every_problem(tmp_path):
    paths = write_datasets(tmp_path, max_operand=3, seed=0)
    train, val = pd.read_parquet(paths["train"]), pd.read_parquet(paths["val"])
    assert set(REQUIRED_COLUMNS) <= set(train.columns) and set(REQUIRED_COLUMNS) <= set(val.columns)
    assert len(train) == len(val) == 16
    row = val.iloc[7]  # in order: a = 7 // 4, b = 7 % 4
    assert list(row["prompt"]) == [{"role": "user", "content": "1+3"}]
    assert row["reward_model"]["ground_truth"] == "4"
    assert row["data_source"] == "sfpo_arithmetic" and row["ability"] == "arithmetic"
    assert sorted(train["extra_info"].map(lambda e: e["question"])) == sorted(val["extra_info"].map(lambda e: e["question"]))


def test_data_is_deterministic_given_the_seed(tmp_path):
    a = pd.read_parquet(write_datasets(tmp_path / "a", 4, seed=3)["train"])
    b = pd.read_parquet(write_datasets(tmp_path / "b", 4, seed=3)["train"])
    c = pd.read_parquet(write_datasets(tmp_path / "c", 4, seed=4)["train"])
    questions = [df["extra_info"].map(lambda e: e["question"]).tolist() for df in (a, b, c)]
    assert questions[0] == questions[1] != questions[2]


def test_all_problems_refuses_an_empty_task():
    with pytest.raises(ValueError, match="max_operand"):
        all_problems(0)


@pytest.mark.parametrize(
    ("response", "score"),
    [("12", 1.0), (" 12\n", 1.0), ("13", 0.0), ("12 apples", 0.0), ("", 0.0), ("1 2", 0.0), ("-12", 0.0),
     ("twelve", 0.0), ("12+0", 0.0), (None, 0.0), ("9" * 5000, 0.0)],
)
def test_reward_is_one_only_for_exactly_the_right_number(response, score):
    assert compute_score("sfpo_arithmetic", response, "12") == score


def test_reward_survives_a_malformed_ground_truth():
    assert compute_score("sfpo_arithmetic", "12", "not a number") == 0.0


def test_parse_answer():
    assert parse_answer(" 7 ") == 7 and parse_answer("7.") is None and parse_answer("") is None


def test_tokenizer_round_trips_and_survives_save_and_load_beside_a_qwen2_config(tmp_path):
    tokenizer = build_tokenizer()
    model = build_model(tokenizer, ModelSize(hidden_size=16, intermediate_size=32, num_attention_heads=2), seed=0)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    # transformers reloads a tokenizer beside a qwen2 config as Qwen2Tokenizer: it must not lose characters.
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    text = "<|im_start|>user\n37+48<|im_end|>\n"
    assert reloaded.encode(text) == tokenizer.encode(text)
    assert len(reloaded.encode("\n", add_special_tokens=False)) == 1  # verl's Qwen prompt builder needs it
    ids = prompt_ids(reloaded, Problem(3, 4))
    assert reloaded.decode(ids) == "<|im_start|>user\n3+4<|im_end|>\n<|im_start|>assistant\n"
    assert reloaded.decode(reloaded.encode("11") + [reloaded.eos_token_id], skip_special_tokens=True) == "11"
