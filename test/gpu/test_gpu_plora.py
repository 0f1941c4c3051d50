"""Partial LoRA on a GPU in bf16: the masked and grouped impls against gather, and regional torch.compile."""
import pytest
import torch

from rellm.models.compile_layers import compile_decoder_layers, decoder_layers
from rellm.testing.toy_models import toy_llm

ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
SYSTEM = "You are a helpful assistant."


def _model(tokenizer, bf16=True):
    """LoRA on every linear layer, B random (LoRA visibly matters), frozen weights in bf16 like stage 4 on a GPU."""
    from rellm.models.speech_llm import SpeechLLM

    torch.manual_seed(0)
    llm = toy_llm(len(tokenizer), hidden_size=128, num_layers=3, seed=0)
    model = SpeechLLM(llm.to(torch.bfloat16) if bf16 else llm, speech_dim=24, emotion_dim=0, tokenizer=tokenizer,
                      lora_r=8, lora_alpha=16, lora_dropout=0.0, lora_target_modules=ALL_LINEAR)
    with torch.no_grad():
        for name, p in model.llm.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    return model.cuda()


def _inputs(model):
    inp = model.build_generation_inputs(SYSTEM, ["Continue the following text in a coherent style: ", ""],
                                        texts=["We finally got the keys to our new house today!", "I am sad."])
    mask = torch.zeros_like(inp["lora_mask"])
    mask[0, 5:12] = True
    mask[1, -3:] = True
    return inp, mask


def _step(model, inp, mask, autocast=True):
    model.llm.zero_grad(set_to_none=True)
    model.plora.set_mask(mask)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
        logits = model.base_llm(inputs_embeds=inp["inputs_embeds"], attention_mask=inp["attention_mask"]).logits
    model.plora.set_mask(None)
    loss = (logits.float() ** 2).mean()
    loss.backward()
    grads = {n: p.grad.float().clone() for n, p in model.llm.named_parameters() if p.grad is not None}
    return logits.detach().float(), loss.detach(), grads


def _assert_close(a, b, name, tolerance):
    """bf16 rounds differently along two paths: compare relative to the tensor's norm."""
    err = float((a - b).norm() / b.norm().clamp_min(1e-12))
    assert err <= tolerance, f"{name}: relative error {err:.3g} > {tolerance}"


@pytest.mark.parametrize("impl", ["masked", "grouped"])
def test_fast_impls_match_gather_in_bf16(tokenizer, impl):
    model = _model(tokenizer)
    inp, mask = _inputs(model)
    model.plora.set_impl("gather")
    ref_logits, ref_loss, ref_grads = _step(model, inp, mask)
    model.plora.set_impl(impl)
    logits, loss, grads = _step(model, inp, mask)
    _assert_close(logits, ref_logits, "logits", 2e-2)
    _assert_close(loss, ref_loss, "loss", 2e-2)
    assert grads.keys() == ref_grads.keys() and len(grads) == 2 * len(model.plora.layers)
    for name in ref_grads:
        _assert_close(grads[name], ref_grads[name], name, 5e-2)


def test_compiled_decoder_layers_match_eager(tokenizer):
    """Regional compile (masked impl, bf16 autocast): the eager loss and gradients within bf16 tolerance, and a
    second sequence length runs through the same compiled layers (automatic dynamic shapes)."""
    torch._dynamo.reset()
    model = _model(tokenizer)
    model.plora.set_impl("masked")
    inp, mask = _inputs(model)
    eager = _step(model, inp, mask)
    assert compile_decoder_layers(model) == len(decoder_layers(model)) == 3
    assert compile_decoder_layers(model) == 0
    compiled = _step(model, inp, mask)
    _assert_close(compiled[0], eager[0], "logits", 2e-2)
    for name in eager[2]:
        _assert_close(compiled[2][name], eager[2][name], name, 5e-2)
    short = {k: v[:, 4:] for k, v in inp.items() if isinstance(v, torch.Tensor)}
    logits, loss, _ = _step(model, short, mask[:, 4:])
    assert torch.isfinite(loss) and logits.shape[1] == inp["inputs_embeds"].shape[1] - 4
