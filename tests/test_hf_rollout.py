"""The `hf` rollout backend: sampling parameters, batching, weight loading, registration."""

from __future__ import annotations

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from sfpo_verl.cpu.rollout.generator import BatchGenerator, SamplingSettings

pytestmark = pytest.mark.verl09(reason="the hf CPU rollout")

VOCAB, EOS, PAD = 16, 1, 0


def tiny_model(seed: int = 0) -> Qwen2ForCausalLM:
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
        eos_token_id=EOS, pad_token_id=PAD,
    )
    config._attn_implementation = "eager"
    return Qwen2ForCausalLM(config).eval()


PROMPTS = [[5, 6, 7], [8, 9], [10, 11, 12, 13]]


def test_settings_from_verl_sampling_dict():
    params = {"temperature": 0.7, "top_p": 0.9, "top_k": 5, "repetition_penalty": 1.0, "logprobs": True,
              "max_tokens": 3}
    assert SamplingSettings.from_verl(params, default_max_new_tokens=10) == SamplingSettings(
        max_new_tokens=3, temperature=0.7, top_p=0.9, top_k=5, log_probs=True
    )
    assert SamplingSettings.from_verl({}, default_max_new_tokens=10).max_new_tokens == 10


@pytest.mark.parametrize("params", [{"repetition_penalty": 1.2}, {"presence_penalty": 0.5}])
def test_settings_refuse_what_they_do_not_implement(params):
    with pytest.raises(ValueError, match="hf rollout"):
        SamplingSettings.from_verl(params, default_max_new_tokens=4)


def test_max_new_tokens_is_honoured_per_request():
    generator = BatchGenerator(tiny_model(), [EOS], PAD)
    budgets = [1, 3, 6]
    outs = generator.generate(PROMPTS, [SamplingSettings(max_new_tokens=b, ignore_eos=True) for b in budgets])
    assert [len(o.token_ids) for o in outs] == budgets


def test_generation_stops_on_eos_and_keeps_it():
    model = tiny_model()
    greedy = SamplingSettings(max_new_tokens=5, temperature=0.0)
    first = [o.token_ids[0] for o in BatchGenerator(model, [EOS], PAD).generate(PROMPTS, [greedy] * 3)]
    # Declare each prompt's first greedy token an EOS: every row must stop right after it.
    outs = BatchGenerator(model, first, PAD).generate(PROMPTS, [greedy] * 3)
    assert [o.token_ids for o in outs] == [[t] for t in first]
    assert all(o.stopped_on_eos for o in outs)
    ignoring = BatchGenerator(model, first, PAD).generate(
        PROMPTS, [SamplingSettings(max_new_tokens=5, temperature=0.0, ignore_eos=True)] * 3)
    assert all(len(o.token_ids) == 5 and not o.stopped_on_eos for o in ignoring)


def test_greedy_is_deterministic_and_matches_argmax_decoding():
    model = tiny_model()
    generator = BatchGenerator(model, [EOS], PAD, seed=1)
    settings = [SamplingSettings(max_new_tokens=5, temperature=0.0, ignore_eos=True)] * 3
    first = generator.generate(PROMPTS, settings)
    second = BatchGenerator(model, [EOS], PAD, seed=2).generate(PROMPTS, settings)
    assert [o.token_ids for o in first] == [o.token_ids for o in second]
    # Unbatched, unpadded argmax decoding of the first prompt gives the same tokens.
    ids = torch.tensor([PROMPTS[0]])
    for _ in range(5):
        ids = torch.cat([ids, model(input_ids=ids).logits[:, -1].argmax(-1, keepdim=True)], dim=-1)
    assert first[0].token_ids == ids[0, len(PROMPTS[0]) :].tolist()


def test_temperature_one_samples_differently_and_seeds_reproduce():
    model = tiny_model()
    settings = [SamplingSettings(max_new_tokens=8, temperature=1.0, ignore_eos=True)] * 3
    a = BatchGenerator(model, [EOS], PAD, seed=0).generate(PROMPTS * 4, settings * 4)
    b = BatchGenerator(model, [EOS], PAD, seed=0).generate(PROMPTS * 4, settings * 4)
    assert [o.token_ids for o in a] == [o.token_ids for o in b]
    # Same prompt repeated: sampling gives different continuations (greedy never would).
    assert len({tuple(a[i].token_ids) for i in range(0, 12, 3)}) > 1


def test_per_request_generators_make_samples_independent_of_the_batch():
    model = tiny_model()
    sample = SamplingSettings(max_new_tokens=6, temperature=1.0, ignore_eos=True)

    def rng(seed):
        return torch.Generator().manual_seed(seed)

    alone = BatchGenerator(model, [EOS], PAD).generate([PROMPTS[1]], [sample], [rng(7)])[0]
    batched = BatchGenerator(model, [EOS], PAD).generate(PROMPTS[::-1], [sample] * 3, [rng(1), rng(7), rng(2)])[1]
    assert alone.token_ids == batched.token_ids


def test_top_k_one_is_greedy():
    model = tiny_model()
    greedy = BatchGenerator(model, [EOS], PAD).generate(
        PROMPTS, [SamplingSettings(max_new_tokens=4, temperature=0.0, ignore_eos=True)] * 3)
    top1 = BatchGenerator(model, [EOS], PAD).generate(
        PROMPTS, [SamplingSettings(max_new_tokens=4, temperature=1.0, top_k=1, ignore_eos=True)] * 3)
    assert [o.token_ids for o in greedy] == [o.token_ids for o in top1]


def test_log_probs_are_those_of_the_sampled_tokens_at_the_temperature():
    model = tiny_model()
    temperature = 0.5
    out = BatchGenerator(model, [EOS], PAD).generate(
        [PROMPTS[2]], [SamplingSettings(max_new_tokens=4, temperature=temperature, log_probs=True, ignore_eos=True)]
    )[0]
    ids = torch.tensor([PROMPTS[2] + out.token_ids])
    logits = model(input_ids=ids).logits[0, len(PROMPTS[2]) - 1 : -1] / temperature
    expected = torch.log_softmax(logits, -1).gather(-1, torch.tensor(out.token_ids).unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(torch.tensor(out.log_probs), expected, atol=1e-5, rtol=0)
    no_lp = BatchGenerator(model, [EOS], PAD).generate([PROMPTS[2]], [SamplingSettings(max_new_tokens=2)])[0]
    assert no_lp.log_probs is None


def test_left_padded_batch_equals_one_at_a_time():
    model = tiny_model()
    settings = SamplingSettings(max_new_tokens=4, temperature=0.0, ignore_eos=True)
    batched = BatchGenerator(model, [EOS], PAD).generate(PROMPTS, [settings] * 3)
    alone = [BatchGenerator(model, [EOS], PAD).generate([p], [settings])[0] for p in PROMPTS]
    assert [o.token_ids for o in batched] == [o.token_ids for o in alone]


def test_registration_resolves_hf_on_both_sides():
    import verl  # noqa: F401  (loads the plugin, as in every verl process)
    from verl.workers.rollout.base import get_rollout_class
    from verl.workers.rollout.replica import get_rollout_replica_class

    from sfpo_verl.cpu.rollout.adapter import HFServerAdapter
    from sfpo_verl.cpu.rollout.replica import HFRolloutReplica

    assert get_rollout_class("hf", "async") is HFServerAdapter
    assert get_rollout_replica_class("hf") is HFRolloutReplica


def test_adapter_registry_patch_is_still_needed():
    """PATCH verl==0.9.1 (patches/README.md): fails once verl offers a public way to
    register a rollout adapter, so the private-dict write in registration.py can go."""
    import verl
    from verl.workers.rollout import base

    assert verl.__version__ == "0.9.1", "re-check patches/README.md against this verl version"
    public = [name for name in dir(base) if "regist" in name.lower() and not name.startswith("_")]
    assert public == [], f"verl now has a public adapter registration ({public}): use it instead of the patch"
    assert isinstance(base._ROLLOUT_REGISTRY, dict)


def test_server_serves_concurrent_requests_and_loads_weights_in_place(tmp_path):
    """The Ray actor's class, driven directly: batched concurrent generate, then a weight
    update through begin/load/finish that changes what it samples without a second copy."""
    import asyncio

    from verl.workers.config import HFModelConfig, RolloutConfig

    from sfpo_verl.cpu.rollout.server import HFRolloutServer
    from sfpo_verl.cpu.task.arithmetic import Problem
    from sfpo_verl.cpu.task.model import ModelSize, build_model, prompt_ids
    from sfpo_verl.cpu.task.tokenizer import build_tokenizer

    tokenizer = build_tokenizer()
    model = build_model(tokenizer, ModelSize(hidden_size=16, intermediate_size=32, num_attention_heads=2), seed=0)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    rollout = RolloutConfig(name="hf", prompt_length=32, response_length=4, dtype="float32")
    server = HFRolloutServer(rollout, HFModelConfig(path=str(tmp_path)), replica_rank=0)
    prompts = [prompt_ids(tokenizer, Problem((a, 1, 0))) for a in range(6)]
    greedy = {"temperature": 0.0, "top_p": 1.0, "top_k": -1, "logprobs": True}

    async def generate_all():
        outs = await asyncio.gather(*[server.generate(p, dict(greedy), request_id=str(i)) for i, p in enumerate(prompts)])
        return [o.token_ids for o in outs]

    async def scenario():
        before = await generate_all()
        params = dict(model.named_parameters())
        storage = {n: p.data_ptr() for n, p in server._params.items()}
        with torch.no_grad():
            new = {n: torch.randn_like(p) for n, p in params.items()}
        names = list(new)
        await server.begin_weight_update()
        await server.load_weights([(names[0], new[names[0]])])
        with pytest.raises(RuntimeError, match="untouched"):
            await server.finish_weight_update(global_steps=1)
        with pytest.raises(KeyError, match="matches no parameter"):
            await server.load_weights([("no.such.weight", new[names[0]])])
        await server.begin_weight_update()
        await server.load_weights([(n, new[n]) for n in names[: len(names) // 2]])
        await server.load_weights([(n, new[n]) for n in names[len(names) // 2 :]])
        await server.finish_weight_update(global_steps=1)
        after = await generate_all()
        assert {n: p.data_ptr() for n, p in server._params.items()} == storage  # copied in place
        assert all(torch.equal(server._params[n].data, new[n]) for n in names)
        output = await server.generate(prompts[0], dict(greedy), request_id="x")
        return before, after, output

    before, after, output = asyncio.run(scenario())
    assert before != after
    assert output.extra_fields["global_steps"] == 1 and output.log_probs is not None
    assert all(1 <= len(ids) <= 4 for ids in after)
