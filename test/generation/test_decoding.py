"""The greedy decoder: token-identical to HF generate, batch-invariant, LoRA in the prefill only."""
import pytest
import torch

from rellm.generation.decoding import GreedyDecoder, static_decoding_support
from rellm.testing.reference_decoding import hf_greedy_tokens as _reference
from rellm.testing.reference_decoding import left_padded_batch as _left_padded_batch
from rellm.testing.reference_decoding import reference_generate, tiny_causal_lm


def _tiny(arch, seed=0):
    return tiny_causal_lm(arch, seed)


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_static_decoder_matches_generate_token_for_token(arch):
    model = _tiny(arch)
    assert static_decoding_support(model) == (True, "")
    embeds, mask = _left_padded_batch(model, [9, 4, 7])
    stops = [1, 2]
    ref = _reference(model, embeds, mask, 24, stops)
    static = GreedyDecoder(model, stops, backend="static").generate(embeds, mask, max_new_tokens=24)
    hf = GreedyDecoder(model, stops, backend="hf").generate(embeds, mask, max_new_tokens=24)
    assert static.tokens == ref == hf.tokens
    assert static.hit_limit == hf.hit_limit == [len(r) == 24 for r in ref]
    assert static.backend == "static" and hf.backend == "hf"


def test_a_row_decodes_the_same_alone_or_in_a_left_padded_batch():
    model = _tiny("llama", seed=3)
    embeds, mask = _left_padded_batch(model, [3, 11, 6], seed=5)
    decoder = GreedyDecoder(model, [1], backend="static")
    batched = decoder.generate(embeds, mask, max_new_tokens=16).tokens
    for i in range(3):
        n = int(mask[i].sum())
        alone = decoder.generate(embeds[i:i + 1, -n:], mask[i:i + 1, -n:], max_new_tokens=16).tokens[0]
        assert alone == batched[i]


def test_stop_tokens_end_a_row_and_min_new_tokens_forbids_an_empty_reply():
    model = _tiny("llama")
    embeds, mask = _left_padded_batch(model, [5, 5])
    first = GreedyDecoder(model, [1], backend="static").generate(embeds, mask, max_new_tokens=1).tokens
    # make each row's first greedy token a stop token: with min_new_tokens=1 it must be skipped
    stops = sorted({first[0][0], first[1][0]})
    out = GreedyDecoder(model, stops, backend="static", min_new_tokens=1).generate(embeds, mask, max_new_tokens=8)
    assert all(len(t) >= 1 and t[0] not in stops for t in out.tokens)
    ref = _reference(model, embeds, mask, 8, stops)
    assert out.tokens == ref
    free = GreedyDecoder(model, stops, backend="static", min_new_tokens=0).generate(embeds, mask, max_new_tokens=8)
    assert free.tokens == [[], []] and free.hit_limit == [False, False]


def test_decode_steps_never_run_lora(make_model):
    """PLoRA: the prefill sees LoRA at the speech positions, the text-token steps do not."""
    model = make_model(emotion_dim=0, nonzero_lora=True)
    E = torch.randn(2, 5, model.base_llm.config.hidden_size)
    M = torch.ones(2, 5, dtype=torch.bool)
    M[1, 3:] = False
    inputs = model.build_generation_inputs("You are a helpful assistant.", ["", ""], speech=(E, M))
    from rellm.generation.inference import lora_prefill_context

    stops = model.layout.stop_token_ids
    reference = reference_generate(model, inputs, max_new_tokens=12, min_new_tokens=1)  # the HF path
    ref_rows = [r[: next((i for i, t in enumerate(r) if t in stops), len(r))] for r in reference.tolist()]
    ctx = lora_prefill_context(model, inputs["lora_mask"])
    static = GreedyDecoder(model.base_llm, stops, backend="static").generate(
        inputs["inputs_embeds"], inputs["attention_mask"], inputs["position_ids"], max_new_tokens=12,
        prefill_context=ctx)
    hf = GreedyDecoder(model.base_llm, stops, backend="hf").generate(
        inputs["inputs_embeds"], inputs["attention_mask"], max_new_tokens=12, prefill_context=ctx)
    assert static.tokens == ref_rows == hf.tokens
    # LoRA mattered in the prefill: without it the replies differ
    no_lora = GreedyDecoder(model.base_llm, stops, backend="static").generate(
        inputs["inputs_embeds"], inputs["attention_mask"], inputs["position_ids"], max_new_tokens=12)
    assert no_lora.tokens != static.tokens
    assert model.plora.state.mask is None  # switched off again afterwards


def test_bad_inputs_and_unsupported_models_are_explained():
    model = _tiny("llama")
    decoder = GreedyDecoder(model, [1], backend="static")
    with pytest.raises(ValueError, match="attention_mask"):
        decoder.generate(torch.zeros(1, 3, 64), torch.ones(1, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="at least one stop"):
        GreedyDecoder(model, [])

    class NotADecoder(torch.nn.Module):
        pass

    ok, reason = static_decoding_support(NotADecoder())
    assert not ok and "Llama-style" in reason
    assert GreedyDecoder(model, [1], backend="auto").backend == "hf"  # CPU: plain generate


def test_both_backends_ignore_the_checkpoints_generation_config():
    # Qwen2.5's generation_config carries repetition_penalty 1.05 (and top_k/top_p/temperature): HF generate
    # used to inherit it on the hf (CPU) backend while the static (GPU) backend was plain argmax.
    model = _tiny("llama", seed=2)
    embeds, mask = _left_padded_batch(model, [9, 4, 7], seed=4)
    stops = [1, 2]
    plain = GreedyDecoder(model, stops, backend="static").generate(embeds, mask, max_new_tokens=32)
    assert any(len(set(t)) < len(t) for t in plain.tokens)  # greedy repeats tokens: a penalty would change them
    model.generation_config.repetition_penalty = 1.5
    model.generation_config.no_repeat_ngram_size = 2
    model.generation_config.do_sample, model.generation_config.top_k, model.generation_config.temperature = True, 5, 0.7
    static = GreedyDecoder(model, stops, backend="static").generate(embeds, mask, max_new_tokens=32)
    hf = GreedyDecoder(model, stops, backend="hf").generate(embeds, mask, max_new_tokens=32)
    assert static.tokens == hf.tokens == plain.tokens
    assert model.generation_config.repetition_penalty == 1.5  # the checkpoint's config is left as it was


def test_reference_generate_of_the_speech_llm_ignores_the_generation_config(make_model):
    model = make_model(emotion_dim=0)
    inputs = model.build_generation_inputs("You are a helpful assistant.", ["Continue: "], texts=["I can't believe"])
    before = reference_generate(model, inputs, max_new_tokens=24)
    model.base_llm.generation_config.repetition_penalty = 3.0
    assert torch.equal(reference_generate(model, inputs, max_new_tokens=24), before)
