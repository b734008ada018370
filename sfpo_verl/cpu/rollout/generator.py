"""Batched sampling from a Hugging Face causal LM, token ids in, token ids (and log-probs) out.

One decode loop serves a whole batch of requests even when their sampling settings
differ (temperature, top-k, top-p and token budget are applied per row), so every
request that arrives while the server is busy joins the next batch. No GPU needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch

# Keys of verl's sampling-param dict (agent loop + LLM server client) that change what is
# generated, and the value that means "off". Unknown keys are refused rather than ignored.
_NEUTRAL_SAMPLING_VALUES = {"repetition_penalty": 1.0, "ignore_eos": False}
_HANDLED_SAMPLING_KEYS = {"temperature", "top_p", "top_k", "logprobs", "max_tokens", "max_new_tokens"}


@dataclass(frozen=True)
class SamplingSettings:
    """How one request is decoded. temperature 0 means greedy."""

    max_new_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    log_probs: bool = False
    ignore_eos: bool = False

    @classmethod
    def from_verl(cls, params: dict[str, Any], default_max_new_tokens: int) -> "SamplingSettings":
        """Read the sampling dict verl's agent loop sends (vLLM's keys and conventions)."""
        for key, value in params.items():
            if key in _HANDLED_SAMPLING_KEYS:
                continue
            if key in _NEUTRAL_SAMPLING_VALUES:
                if key != "ignore_eos" and value != _NEUTRAL_SAMPLING_VALUES[key]:
                    raise ValueError(f"The hf rollout does not implement {key}={value}; leave it at its default.")
                continue
            raise ValueError(f"The hf rollout does not know the sampling parameter {key!r}.")
        max_new_tokens = params.get("max_tokens", params.get("max_new_tokens", default_max_new_tokens))
        return cls(
            max_new_tokens=int(max_new_tokens),
            temperature=float(params.get("temperature", 1.0)),
            top_p=float(params.get("top_p", 1.0)),
            top_k=int(params.get("top_k", -1) if params.get("top_k") is not None else -1),
            log_probs=bool(params.get("logprobs", False)),
            ignore_eos=bool(params.get("ignore_eos", False)),
        )


@dataclass
class Generation:
    """What one request produced: the new token ids (EOS included when it stopped on it)."""

    token_ids: list[int]
    log_probs: Optional[list[float]]
    stopped_on_eos: bool


class BatchGenerator:
    """Decode loop over a left-padded batch with a key/value cache.

    Log-probs are those of the sampled tokens under softmax(logits / temperature)
    (raw logits when greedy), the same quantity verl's actor recomputes, so the
    trainer's rollout-vs-actor probability check compares like with like.
    """

    def __init__(self, model: torch.nn.Module, eos_token_ids: list[int], pad_token_id: int, seed: int = 0):
        if not eos_token_ids:
            raise ValueError("The model has no EOS token id: generation could never stop early.")
        self.model = model.eval()
        self.eos_token_ids = torch.tensor(sorted(set(eos_token_ids)))
        self.pad_token_id = pad_token_id
        self.rng = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def generate(
        self, prompts: list[list[int]], settings: list[SamplingSettings], rngs: Optional[list[torch.Generator]] = None
    ) -> list[Generation]:
        """`rngs`: one random generator per row, so that what a request samples does not depend
        on which other requests share its batch; by default all rows draw from this generator's."""
        if len(prompts) != len(settings):
            raise ValueError("One SamplingSettings per prompt is needed.")
        rngs = rngs if rngs is not None else [self.rng] * len(prompts)
        batch = len(prompts)
        device = next(self.model.parameters()).device
        input_ids, attention_mask = self._left_pad(prompts, device)
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)

        temperature = torch.tensor([s.temperature for s in settings], device=device)
        greedy = temperature <= 0
        budget = torch.tensor([s.max_new_tokens for s in settings], device=device)
        stops_on_eos = torch.tensor([not s.ignore_eos for s in settings], device=device)
        eos_ids = self.eos_token_ids.to(device)

        new_tokens = torch.full((batch, int(budget.max())), self.pad_token_id, dtype=torch.long, device=device)
        new_log_probs = torch.zeros(new_tokens.shape, dtype=torch.float32, device=device)
        lengths = torch.zeros(batch, dtype=torch.long, device=device)
        done = budget <= 0
        hit_eos = torch.zeros(batch, dtype=torch.bool, device=device)

        past = None
        step_ids, step_positions = input_ids, position_ids
        for step in range(new_tokens.shape[1]):
            out = self.model(
                input_ids=step_ids,
                attention_mask=attention_mask,
                position_ids=step_positions,
                past_key_values=past,
                use_cache=True,
            )
            past = out.past_key_values
            logits = out.logits[:, -1, :].float()
            scaled = logits / torch.where(greedy, torch.ones_like(temperature), temperature).unsqueeze(-1)
            log_probs = torch.log_softmax(scaled, dim=-1)
            sampled = self._sample(scaled, settings, greedy, rngs)
            token_log_probs = log_probs.gather(-1, sampled.unsqueeze(-1)).squeeze(-1)

            active = ~done
            new_tokens[active, step] = sampled[active]
            new_log_probs[active, step] = token_log_probs[active]
            lengths += active.long()
            is_eos = torch.isin(sampled, eos_ids) & stops_on_eos & active
            hit_eos |= is_eos
            done |= is_eos | (lengths >= budget)
            if bool(done.all()):
                break

            step_ids = torch.where(done, torch.full_like(sampled, self.pad_token_id), sampled).unsqueeze(-1)
            step_positions = step_positions[:, -1:] + 1
            attention_mask = torch.cat([attention_mask, torch.ones_like(step_ids)], dim=-1)

        results = []
        for row in range(batch):
            n = int(lengths[row])
            results.append(
                Generation(
                    token_ids=new_tokens[row, :n].tolist(),
                    log_probs=new_log_probs[row, :n].tolist() if settings[row].log_probs else None,
                    stopped_on_eos=bool(hit_eos[row]),
                )
            )
        return results

    def _left_pad(self, prompts: list[list[int]], device) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            if not prompt:
                raise ValueError("Empty prompt: there is nothing to condition generation on.")
            input_ids[row, width - len(prompt) :] = torch.tensor(prompt)
            attention_mask[row, width - len(prompt) :] = 1
        return input_ids.to(device), attention_mask.to(device)

    def _sample(self, scaled: torch.Tensor, settings: list[SamplingSettings], greedy: torch.Tensor,
                rngs: list[torch.Generator]) -> torch.Tensor:
        """Per-row top-k / top-p filtering, then one draw per row (argmax for greedy rows)."""
        vocab = scaled.shape[-1]
        top_k = torch.tensor([s.top_k if 0 < s.top_k < vocab else vocab for s in settings], device=scaled.device)
        top_p = torch.tensor([s.top_p for s in settings], device=scaled.device)

        sorted_logits, sorted_idx = scaled.sort(dim=-1, descending=True)
        ranks = torch.arange(vocab, device=scaled.device).unsqueeze(0)
        remove = ranks >= top_k.unsqueeze(-1)
        probs = torch.softmax(sorted_logits.masked_fill(remove, float("-inf")), dim=-1)
        # Keep the smallest prefix whose mass reaches top_p (the first token always stays).
        mass_before = probs.cumsum(dim=-1) - probs
        remove |= mass_before >= top_p.unsqueeze(-1)
        filtered = sorted_logits.masked_fill(remove, float("-inf"))

        # Gumbel-max: argmax(logits + Gumbel noise) is a draw from softmax(logits); the noise
        # of each row comes from that row's own generator.
        uniform = torch.stack([torch.rand(vocab, generator=rng) for rng in rngs]).to(scaled.device)
        gumbel = -torch.log(-torch.log(uniform.clamp(min=1e-20)))
        choice = (filtered + gumbel).argmax(dim=-1)
        sampled = sorted_idx.gather(-1, choice.unsqueeze(-1)).squeeze(-1)
        return torch.where(greedy, scaled.argmax(dim=-1), sampled)
