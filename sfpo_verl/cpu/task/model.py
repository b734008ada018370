"""The tiny Qwen2 policy and its brief supervised pre-training on the arithmetic task.

Pre-training targets are noisy: with probability `label_noise` the boxed answer is a random
number instead of the sum. The model learns the sums as its most likely answer (greedy
accuracy near 1, on validation problems too) while sampling at temperature 1 (the rollout
setting) is right only about (1 - label_noise) of the time. RL then has signal from the
first step and a clear ceiling to climb towards by sharpening what the model knows, the
regime RL fine-tuning of pre-trained LLMs is in. (On clean targets, a model this small
learns RL-slowly: the sampled accuracy of a partly trained model barely moves in a few
hundred rollouts.)
"""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase, Qwen2Config, Qwen2ForCausalLM

from sfpo_verl.cpu.rollout.generator import BatchGenerator, SamplingSettings
from sfpo_verl.cpu.task.arithmetic import DATA_SOURCE, Problem, boxed
from sfpo_verl.paper.reward import compute_score


@dataclass(frozen=True)
class ModelSize:
    hidden_size: int = 128
    intermediate_size: int = 256
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    max_position_embeddings: int = 64


def build_model(tokenizer: PreTrainedTokenizerBase, size: ModelSize, seed: int) -> Qwen2ForCausalLM:
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=size.hidden_size,
        intermediate_size=size.intermediate_size,
        num_hidden_layers=size.num_hidden_layers,
        num_attention_heads=size.num_attention_heads,
        num_key_value_heads=size.num_attention_heads,
        max_position_embeddings=size.max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|im_start|>"),
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        torch_dtype="float32",
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def prompt_ids(tokenizer: PreTrainedTokenizerBase, problem: Problem) -> list[int]:
    """Token ids verl's agent loop will send for this problem (chat template + generation prompt)."""
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": problem.question}], add_generation_prompt=True, tokenize=False
    )
    return tokenizer.encode(rendered, add_special_tokens=False)


def sampled_accuracy(model, tokenizer, problems: list[Problem], temperature: float = 1.0, seed: int = 0) -> float:
    """Fraction of `problems` answered correctly, graded by the paper's math reward as in RL."""
    generator = BatchGenerator(model, [tokenizer.eos_token_id], tokenizer.pad_token_id, seed=seed)
    # Room for the longest right response and the end-of-sequence token (one token a character).
    longest = max(len(boxed(p.answer)) for p in problems) + 1
    settings = [SamplingSettings(max_new_tokens=longest, temperature=temperature)] * len(problems)
    outputs = generator.generate([prompt_ids(tokenizer, p) for p in problems], settings)
    correct = [
        compute_score(DATA_SOURCE, tokenizer.decode(out.token_ids, skip_special_tokens=True), p.answer)["acc"]
        for p, out in zip(problems, outputs)
    ]
    model.train()
    return sum(correct) / len(problems)


def pretrain(
    model, tokenizer, problems: list[Problem], steps: int, label_noise: float, batch_size: int = 64,
    lr: float = 1e-3, log_every: int = 250, seed: int = 0, log=print,
) -> None:
    """`steps` steps of supervised training on `prompt -> \\boxed{answer}<|im_end|>` with noisy
    answers, the learning rate decaying linearly to 0 so the model ends settled rather than
    mid-oscillation. A fixed step count and seeded batches, never a wall-clock or accuracy
    stop, so the same settings give the same weights however loaded the machine is."""
    rng = torch.Generator().manual_seed(seed)
    sequences, answer_masks = _supervised_examples(tokenizer, _noisy_copies(problems, label_noise, seed))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda done: 1 - done / steps)
    start = time.time()
    model.train()
    for step in range(1, steps + 1):
        rows = torch.randint(len(sequences), (batch_size,), generator=rng)
        ids, mask = sequences[rows], answer_masks[rows]
        logits = model(input_ids=ids).logits[:, :-1]
        loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")
        loss = (loss * mask[:, 1:]).sum() / mask[:, 1:].sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % log_every == 0 or step == steps:
            log(f"[pretrain] step {step}/{steps}  loss {loss.item():.3f}  ({time.time() - start:.0f}s)")


def weights_digest(model) -> str:
    """SHA-256 of the model's parameters and buffers (names, dtypes, shapes, bytes): equal
    digests mean bit-identical weights, whichever machine built them."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _noisy_copies(problems: list[Problem], label_noise: float, seed: int, copies: int = 20) -> list[tuple[Problem, str]]:
    """`copies` (problem, target response) pairs per problem; a `label_noise` fraction of the
    targets box a number drawn uniformly from the task's range of sums instead of the sum."""
    rng = random.Random(seed)
    largest_sum = max(int(p.answer) for p in problems)
    return [
        (p, boxed(str(rng.randint(0, largest_sum)) if rng.random() < label_noise else p.answer))
        for p in problems
        for _ in range(copies)
    ]


def _supervised_examples(tokenizer, examples: list[tuple[Problem, str]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded `prompt + target + EOS` ids, with a mask selecting the target tokens."""
    rows = []
    for problem, target in examples:
        prompt = prompt_ids(tokenizer, problem)
        answer = tokenizer.encode(target, add_special_tokens=False) + [tokenizer.eos_token_id]
        rows.append((prompt + answer, [0] * len(prompt) + [1] * len(answer)))
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.float32)
    for i, (row_ids, row_mask) in enumerate(rows):
        ids[i, : len(row_ids)] = torch.tensor(row_ids)
        mask[i, : len(row_mask)] = torch.tensor(row_mask, dtype=torch.float32)
    return ids, mask
