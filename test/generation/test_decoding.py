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


# ---------------------------------------------------------------- released decoding options (penalty, sampling)
def _prompts(vocab, lengths, seed=7):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(3, vocab, (n,), generator=g).tolist() for n in lengths]


def _embed_left_padded(model, prompts, pad=0):
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    mask = torch.zeros(len(prompts), width, dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = torch.tensor(p)
        mask[i, width - len(p):] = 1
    with torch.no_grad():
        return model.get_input_embeddings()(ids), mask


def _hf_from_ids(model, prompt, max_new_tokens, stops, **kwargs):
    """HF generate given the prompt as input_ids (its own processors see the prompt), new tokens up to a stop."""
    out = model.generate(input_ids=torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                         max_new_tokens=max_new_tokens, min_new_tokens=1, num_beams=1, eos_token_id=stops,
                         pad_token_id=stops[0], **kwargs)[0, len(prompt):].tolist()
    return out[: next((i for i, t in enumerate(out) if t in stops), len(out))]


@pytest.mark.slow
@pytest.mark.parametrize("penalty", [1.1, 0.8])
def test_repetition_penalty_equals_hf_processor_on_real_logits(smollm2_dir, penalty):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.generation.logits_process import RepetitionPenaltyLogitsProcessor

    from rellm.generation.decoding import apply_repetition_penalty, seen_mask

    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32).eval()
    texts = ["I can't believe we won the game today, we won it all!", "The weather is gloomy and I feel sad."]
    ids = [tok(t)["input_ids"] for t in texts]
    with torch.no_grad():
        logits = torch.stack([model(input_ids=torch.tensor([i])).logits[0, -1] for i in ids])
    assert (logits > 0).any() and (logits < 0).any()  # both branches of the penalty are exercised
    ours = apply_repetition_penalty(logits, seen_mask(ids, 2, logits.shape[1], "cpu"), penalty)
    hf = RepetitionPenaltyLogitsProcessor(penalty)
    expected = torch.cat([hf(torch.tensor([i]), logits[r:r + 1].clone()) for r, i in enumerate(ids)])
    assert torch.equal(ours, expected)
    changed = ours != logits
    assert int(changed.sum()) == sum(len(set(i)) for i in ids) - int((logits[:, 0] == 0).sum())


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_penalised_greedy_equals_hf_generate_on_the_prompt_ids(arch):
    """The released teacher passes its prompt as input_ids, so the penalty covers the prompt: both backends,
    given the prompt ids as ``penalty_ids``, decode what HF generate(input_ids, repetition_penalty) decodes."""
    from rellm.generation.decoding import DecodingOptions

    model = _tiny(arch, seed=2)
    prompts = _prompts(model.config.vocab_size, [9, 4, 7])
    stops = [1, 2]
    embeds, mask = _embed_left_padded(model, prompts)
    options = DecodingOptions(repetition_penalty=1.3)
    static = GreedyDecoder(model, stops, backend="static", options=options).generate(
        embeds, mask, max_new_tokens=24, penalty_ids=prompts)
    hf = GreedyDecoder(model, stops, backend="hf", options=options).generate(
        embeds, mask, max_new_tokens=24, penalty_ids=prompts)
    reference = [_hf_from_ids(model, p, 24, stops, do_sample=False, repetition_penalty=1.3) for p in prompts]
    assert static.tokens == hf.tokens == reference
    plain = GreedyDecoder(model, stops, backend="static").generate(embeds, mask, max_new_tokens=24).tokens
    assert plain != static.tokens  # the penalty changed the replies (the test is not vacuous)
    # without the prompt context the penalty sees only the reply: another result, what generate(inputs_embeds) gives
    reply_only = GreedyDecoder(model, stops, backend="static", options=options).generate(
        embeds, mask, max_new_tokens=24).tokens
    with torch.no_grad():
        embeds_ref = [_reference_penalised_embeds(model, embeds[i:i + 1, -len(p):], 24, stops, 1.3)
                      for i, p in enumerate(prompts)]
    assert reply_only == embeds_ref != static.tokens


def _reference_penalised_embeds(model, embeds, max_new_tokens, stops, penalty):
    out = model.generate(inputs_embeds=embeds, attention_mask=torch.ones(embeds.shape[:2], dtype=torch.long),
                         max_new_tokens=max_new_tokens, min_new_tokens=1, do_sample=False, num_beams=1,
                         repetition_penalty=penalty, eos_token_id=stops, pad_token_id=stops[0])[0].tolist()
    return out[: next((i for i, t in enumerate(out) if t in stops), len(out))]


def test_sampling_with_the_penalty_equals_hf_sampling_and_is_seeded():
    from rellm.generation.decoding import DecodingOptions

    model = _tiny("llama", seed=4)
    prompt = _prompts(model.config.vocab_size, [8], seed=3)
    embeds, mask = _embed_left_padded(model, prompt)
    stops = [1]
    options = DecodingOptions(repetition_penalty=1.1, do_sample=True, temperature=0.9, top_k=20, top_p=0.5, seed=11)
    decoder = GreedyDecoder(model, stops, backend="static", options=options)  # sampling runs through generate
    first = decoder.generate(embeds, mask, max_new_tokens=20, penalty_ids=prompt)
    assert first.backend == "hf"
    again = decoder.generate(embeds, mask, max_new_tokens=20, penalty_ids=prompt)
    torch.manual_seed(11)
    reference = _hf_from_ids(model, prompt[0], 20, stops, do_sample=True, temperature=0.9, top_k=20, top_p=0.5,
                             repetition_penalty=1.1)
    assert first.tokens == again.tokens == [reference]
    other = GreedyDecoder(model, stops, options=DecodingOptions(do_sample=True, top_k=20, seed=12)).generate(
        embeds, mask, max_new_tokens=20)
    greedy = GreedyDecoder(model, stops).generate(embeds, mask, max_new_tokens=20)
    assert other.tokens != first.tokens and greedy.tokens != first.tokens


def test_decoding_options_are_checked():
    from rellm.generation.decoding import DecodingOptions

    for bad in ({"repetition_penalty": 0}, {"temperature": 0.0}, {"top_k": -1}, {"top_p": 0.0}, {"top_p": 1.5}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            DecodingOptions(**bad)
    assert not DecodingOptions().penalised and DecodingOptions(repetition_penalty=1.1).penalised
