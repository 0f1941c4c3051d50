import pytest
import torch

from rellm.models.plora import ALL_POSITIONS
from rellm.training.toy import toy_llm

SYSTEM = "You are a helpful assistant."


def _text_inputs(model):
    inp = model.build_generation_inputs(SYSTEM, ["Continue the following text in a coherent style: ", ""],
                                        texts=["We finally got the keys to our new house today!", "I am sad."])
    return inp


def test_text_only_outputs_are_identical_to_the_base_llm(make_model, tokenizer):
    model = make_model()  # LoRA B is non-zero: LoRA would change every output it touches
    base = toy_llm(len(tokenizer), seed=0)  # the same random weights, never wrapped
    inp = _text_inputs(model)
    assert not inp["lora_mask"].any()
    kw = {k: inp[k] for k in ("inputs_embeds", "attention_mask", "position_ids")}
    with torch.no_grad():
        ref = base(**kw).logits
        # LoRA switched off (mask None) and an all-zero mask both give the frozen LLM exactly.
        model.plora.set_mask(None)
        off = model.base_llm(**kw).logits
        model.plora.set_mask(torch.zeros_like(inp["lora_mask"]))
        zero = model.base_llm(**kw).logits
        model.plora.set_mask(ALL_POSITIONS)
        on = model.base_llm(**kw).logits
        model.plora.set_mask(None)
    assert torch.equal(off, ref)
    assert torch.equal(zero, ref)
    assert not torch.allclose(on, ref)  # sanity: the LoRA weights do matter


def test_lora_acts_only_at_speech_positions(make_model):
    model = make_model(emotion_dim=0)
    E, M = model.encode_speech(torch.randn(1, 60, 24), torch.tensor([60]))
    inp = model.build_generation_inputs(SYSTEM, ["Hi "], speech=(E, M))
    mask = inp["lora_mask"]
    first = int(mask[0].nonzero()[0])
    kw = {k: inp[k] for k in ("inputs_embeds", "attention_mask", "position_ids")}
    with torch.no_grad():
        model.plora.set_mask(mask)
        plora = model.base_llm(**kw).logits
        model.plora.set_mask(None)
        frozen = model.base_llm(**kw).logits
    # Causal LM: positions before the first speech token never see LoRA.
    assert torch.equal(plora[:, :first], frozen[:, :first])
    assert not torch.allclose(plora[:, first:], frozen[:, first:])


def test_lora_work_is_limited_to_the_masked_rows(make_model):
    model = make_model()
    rows_seen = []
    hooks = [layer.lora_A["default"].register_forward_hook(lambda m, i, o: rows_seen.append(i[0].shape[0]))
             for layer in model.plora.layers]
    inp = _text_inputs(model)
    kw = {"inputs_embeds": inp["inputs_embeds"], "attention_mask": inp["attention_mask"]}
    with torch.no_grad():
        model.base_llm(**kw)  # mask None: LoRA off, no LoRA matmul at all
        model.plora.set_mask(torch.zeros_like(inp["lora_mask"]))
        model.base_llm(**kw)  # all-zero mask: nothing to compute either
        assert rows_seen == []
        mask = torch.zeros_like(inp["lora_mask"])
        mask[0, 5:8] = True
        mask[1, -2:] = True
        model.plora.set_mask(mask)
        model.base_llm(**kw)
        model.plora.set_mask(None)
    # Every LoRA layer ran its branch on exactly the 5 masked rows, not on B * T rows.
    assert rows_seen == [5] * len(model.plora.layers)
    for h in hooks:
        h.remove()


def test_generate_applies_lora_to_the_prefill_only(make_model):
    """KV-cached generate == a no-cache greedy loop whose LoRA mask covers the prompt's speech positions only."""
    model = make_model(emotion_dim=0)
    E, M = model.encode_speech(torch.randn(2, 80, 24), torch.tensor([80, 41]))
    inp = model.build_generation_inputs(SYSTEM, ["", "Tell me: "], speech=(E, M))
    new = model.generate(inp, max_new_tokens=6, min_new_tokens=6)
    assert new.shape == (2, 6)
    embeds, attn, mask = inp["inputs_embeds"], inp["attention_mask"], inp["lora_mask"]
    emb = model.base_llm.get_input_embeddings()
    tokens = []
    with torch.no_grad():
        for _ in range(6):
            pos = (attn.cumsum(1) - 1).clamp_min(0)
            model.plora.set_mask(mask)
            logits = model.base_llm(inputs_embeds=embeds, attention_mask=attn, position_ids=pos).logits[:, -1]
            model.plora.set_mask(None)
            nxt = logits.argmax(-1)
            tokens.append(nxt)
            embeds = torch.cat([embeds, emb(nxt)[:, None]], 1)
            attn = torch.cat([attn, torch.ones_like(attn[:, :1])], 1)
            mask = torch.cat([mask, torch.zeros_like(mask[:, :1])], 1)
    assert torch.equal(new, torch.stack(tokens, 1))
    # After generate, LoRA is off again and no hook is left behind.
    assert model.plora.state.mask is None and model.plora._hook is None


def test_wrong_target_modules_is_a_clear_error(tokenizer):
    from rellm.models.speech_llm import SpeechLLM

    with pytest.raises(ValueError, match="lora_target_modules"):
        SpeechLLM(toy_llm(len(tokenizer)), 24, tokenizer=tokenizer, lora_target_modules=["c_attn"])


def _dense_masked_reference(layer, mask):
    """``W x + mask * s * B A x`` computed densely from peft's own modules (no partial-LoRA code)."""
    base, A, B = layer.base_layer, layer.lora_A["default"], layer.lora_B["default"]
    scaling = layer.scaling["default"]

    def forward(x, *args, **kwargs):
        m = torch.ones(x.shape[:-1]) if isinstance(mask, str) else mask.to(x.dtype)
        return base(x) + m.unsqueeze(-1) * scaling * B(A(x))

    return forward


@pytest.mark.parametrize("case", ["ragged rows", "one column range", "all positions", "bf16 autocast"])
def test_partial_lora_equals_the_dense_masked_formula_with_gradients(make_model, case):
    model = make_model()
    # Under autocast the branch skips the cast to the fp32 LoRA weights (the matmuls run in bf16 anyway).
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=case == "bf16 autocast")
    # bf16 rounds differently along the two paths: compare relative to each tensor's norm there.
    tolerance = 5e-2 if case == "bf16 autocast" else 1e-5

    def assert_close(a, b):
        assert (a.float() - b.float()).norm() <= tolerance * b.float().norm() + 1e-7
    inp = _text_inputs(model)
    kw = {"inputs_embeds": inp["inputs_embeds"].requires_grad_(), "attention_mask": inp["attention_mask"]}
    if case == "all positions":
        mask = ALL_POSITIONS
    else:
        mask = torch.zeros_like(inp["lora_mask"])
        if case in ("ragged rows", "bf16 autocast"):
            mask[0, 5:8] = True
            mask[1, 2:4] = True
        else:
            mask[:, 3:9] = True
    model.plora.set_mask(mask)

    def run():
        model.llm.zero_grad(set_to_none=True)
        kw["inputs_embeds"].grad = None
        with autocast:
            logits = model.base_llm(**kw).logits
        (logits.float() ** 2).mean().backward()
        grads = {n: p.grad.clone() for n, p in model.llm.named_parameters() if "lora_" in n}
        return logits.detach(), grads, kw["inputs_embeds"].grad.clone()

    ours, our_grads, our_input_grad = run()
    for layer in model.plora.layers:
        layer.forward = _dense_masked_reference(layer, mask)
    ref, ref_grads, ref_input_grad = run()
    assert_close(ours, ref)
    assert_close(our_input_grad, ref_input_grad)
    assert our_grads.keys() == ref_grads.keys() and len(our_grads) == 2 * len(model.plora.layers)
    for name in ref_grads:
        assert_close(our_grads[name], ref_grads[name])
    if case != "all positions":  # sanity: the mask matters for the gradients of the LoRA matrices
        assert any(g.abs().sum() > 0 for g in ref_grads.values())
