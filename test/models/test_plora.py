import pytest
import torch

from rellm.models.plora import ALL_POSITIONS, IMPLS
from rellm.testing.reference_decoding import reference_generate
from rellm.testing.toy_models import toy_llm

SYSTEM = "You are a helpful assistant."


def _text_inputs(model):
    inp = model.build_generation_inputs(SYSTEM, ["Continue the following text in a coherent style: ", ""],
                                        texts=["We finally got the keys to our new house today!", "I am sad."])
    return inp


@pytest.mark.parametrize("impl", IMPLS)
def test_text_only_outputs_are_identical_to_the_base_llm(make_model, tokenizer, impl):
    model = make_model()  # LoRA B is non-zero: LoRA would change every output it touches
    model.plora.set_impl(impl)
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


def test_gather_limits_lora_work_to_the_masked_rows(make_model):
    model = make_model()
    model.plora.set_impl("gather")
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
    new = reference_generate(model, inp, max_new_tokens=6, min_new_tokens=6)
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


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", ["ragged rows", "one column range", "all positions", "bf16 autocast"])
def test_partial_lora_equals_the_dense_masked_formula_with_gradients(make_model, case, impl):
    model = make_model()
    model.plora.set_impl(impl)
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


ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _all_linear_model(tokenizer, dropout=0.0):
    """A SpeechLLM with LoRA on every linear layer (the paper configs: q/k/v and gate/up groups exist), B random."""
    from rellm.models.speech_llm import SpeechLLM

    torch.manual_seed(0)
    model = SpeechLLM(toy_llm(len(tokenizer), seed=0), speech_dim=24, emotion_dim=0, tokenizer=tokenizer, lora_r=4,
                      lora_alpha=8, lora_dropout=dropout, lora_target_modules=ALL_LINEAR)
    with torch.no_grad():
        for name, p in model.llm.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    return model


def _masks(shape):
    """Edge and mixed masks over a ``[2, T]`` batch."""
    mixed = torch.zeros(shape, dtype=torch.bool)
    mixed[0, 3:9] = True  # row 0: a speech span; row 1: no speech at all
    ragged = torch.zeros(shape, dtype=torch.bool)
    ragged[0, :1] = True  # first and last positions: the edges of the flat row index
    ragged[1, -1:] = True
    ragged[1, 4:6] = True
    return {"empty": torch.zeros(shape, dtype=torch.bool), "full": torch.ones(shape, dtype=torch.bool),
            "mixed": mixed, "ragged": ragged, "all positions": ALL_POSITIONS}


def _loss_and_grads(model, kw, mask, train=False):
    model.llm.zero_grad(set_to_none=True)
    embeds = kw["inputs_embeds"].detach().clone().requires_grad_()
    model.llm.train(train)
    model.plora.set_mask(mask)
    logits = model.base_llm(inputs_embeds=embeds, attention_mask=kw["attention_mask"]).logits
    model.plora.set_mask(None)
    loss = (logits ** 2).mean()
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.llm.named_parameters() if p.grad is not None}
    grads["inputs_embeds"] = embeds.grad.clone()
    return logits.detach(), loss.detach(), grads


def _assert_close(a, b, name="", tolerance=1e-6):
    """Equal to ``tolerance`` of the tensor's scale."""
    err, scale = float((a - b).abs().max()), max(1.0, float(b.abs().max()))
    assert err <= tolerance * scale, f"{name}: max abs difference {err:.3g} at scale {scale:.3g}"


# fp32: masked runs the gather path's matmuls on more rows and agrees to 1e-6; grouped's concatenated A matmul
# sums in another blocking order, which the random toy (LoRA B ~ N(0, 0.5)) amplifies to ~3e-6 of the logits.
# fp64 shows both are rounding only.
TOLERANCE = {("masked", torch.float32): 1e-6, ("grouped", torch.float32): 1e-5,
             ("masked", torch.float64): 1e-12, ("grouped", torch.float64): 1e-12}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("impl", ["masked", "grouped"])
@pytest.mark.parametrize("mask_name", ["empty", "full", "mixed", "ragged", "all positions"])
def test_fast_impls_give_the_gather_losses_and_every_gradient(tokenizer, impl, mask_name, dtype):
    """The same module on CPU: same logits, loss and gradients (every LoRA matrix and the input)."""
    model = _all_linear_model(tokenizer).to(dtype)
    inp = _text_inputs(model)
    kw = {"inputs_embeds": inp["inputs_embeds"].detach().to(dtype), "attention_mask": inp["attention_mask"]}
    mask = _masks(inp["lora_mask"].shape)[mask_name]
    tolerance = TOLERANCE[impl, dtype]
    model.plora.set_impl("gather")
    ref_logits, ref_loss, ref_grads = _loss_and_grads(model, kw, mask)
    model.plora.set_impl(impl)
    logits, loss, grads = _loss_and_grads(model, kw, mask)
    _assert_close(logits, ref_logits, "logits", tolerance)
    _assert_close(loss, ref_loss, "loss", tolerance)
    lora = [n for n in grads if "lora_" in n]
    assert len(lora) == 2 * len(model.plora.layers) == 2 * 7 * 2
    if mask_name == "empty":
        # No LoRA row: gather never runs the branch (no gradient at all), masked adds an exact zero (zero
        # gradients). SpeechLLM passes None, not an empty mask, so training never sees the difference.
        assert not any("lora_" in n for n in ref_grads)
        assert all(float(grads[n].abs().max()) == 0 for n in lora)
        grads = {n: g for n, g in grads.items() if "lora_" not in n}
    assert grads.keys() == ref_grads.keys()
    for name in ref_grads:
        _assert_close(grads[name], ref_grads[name], name, tolerance)
    if mask_name == "empty":  # and the outputs are the frozen LLM's, exactly
        model.plora.set_mask(None)
        with torch.no_grad():
            frozen = model.base_llm(**kw).logits
        assert torch.equal(logits, frozen)
    else:
        assert all(float(ref_grads[n].abs().max()) > 0 for n in lora)  # the mask let every LoRA matrix learn


def test_dropout_is_the_only_difference_between_impls(tokenizer):
    """With lora_dropout > 0: equal in eval mode (dropout off); in training each impl draws its own masks."""
    model = _all_linear_model(tokenizer, dropout=0.3)
    inp = _text_inputs(model)
    kw = {"inputs_embeds": inp["inputs_embeds"].detach(), "attention_mask": inp["attention_mask"]}
    mask = _masks(inp["lora_mask"].shape)["mixed"]
    results = {}
    for impl in IMPLS:
        model.plora.set_impl(impl)
        results[impl] = _loss_and_grads(model, kw, mask, train=False)
        torch.manual_seed(1)
        results[impl, "train"] = _loss_and_grads(model, kw, mask, train=True)
    for impl in ("masked", "grouped"):
        _assert_close(results[impl][1], results["gather"][1], "loss", 1e-5)
        assert not torch.equal(results[impl, "train"][1], results[impl][1])  # dropout did act


def test_grouped_shares_one_matmul_per_group(tokenizer):
    """q/k/v and gate/up of a layer run one A matmul between them: 3 A matmuls per layer instead of 7."""
    from rellm.models.plora import lora_layers

    model = _all_linear_model(tokenizer)
    calls = []
    hooks = [layer.lora_A["default"].register_forward_hook(lambda m, i, o: calls.append(m))
             for layer in lora_layers(model.llm)]
    inp = _text_inputs(model)
    kw = {"inputs_embeds": inp["inputs_embeds"], "attention_mask": inp["attention_mask"]}
    counts = {}
    with torch.no_grad():
        for impl in ("masked", "grouped"):
            calls.clear()
            model.plora.set_impl(impl)
            model.plora.set_mask(ALL_POSITIONS)
            model.base_llm(**kw)
            counts[impl] = len(calls)
    for h in hooks:
        h.remove()
    layers = model.base_llm.config.num_hidden_layers
    # grouped calls F.linear on the concatenated weights; only o_proj and down_proj call their own A module
    assert counts == {"masked": 7 * layers, "grouped": 2 * layers}


def test_unknown_impl_is_a_clear_error(make_model):
    with pytest.raises(ValueError, match="plora_impl must be one of gather, masked, grouped"):
        make_model().plora.set_impl("fused")
