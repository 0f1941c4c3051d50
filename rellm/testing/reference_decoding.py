"""Reference decoding of a ``SpeechLLM`` with HF ``generate(inputs_embeds=...)``, for tests.

Stage 5 decodes with ``rellm.generation.decoding.GreedyDecoder``; tests check it (and partial LoRA)
against this plain HF path.
"""
import torch

from rellm.generation.decoding import GREEDY_SETTINGS, neutral_generation_config
from rellm.models.plora import ALL_POSITIONS


@torch.no_grad()
def reference_generate(model, inputs, max_new_tokens=256, **generate_kwargs):
    """Greedy (unless told otherwise) HF ``generate`` over ``model.build_generation_inputs(...)``.

    The checkpoint's ``generation_config`` is not inherited (``neutral_generation_config``): only
    the greedy settings here and ``generate_kwargs`` apply.

    LoRA is applied to the prompt forward (prefill) only, at the speech positions; every
    incremental step runs the frozen LLM without LoRA matmuls (docs/method.md#partial-lora). Returns
    the new token ids ``[B, T_new]`` (decode with ``model.tokenizer.batch_decode``).
    """
    lora_mask = inputs.get("lora_mask")
    use = model.plora is not None and lora_mask is not None and bool(lora_mask.any())
    if use:
        model.plora.prefill_only(lora_mask if model.lora_scope == "speech" else ALL_POSITIONS, model.base_llm)
    kwargs = {**GREEDY_SETTINGS, "eos_token_id": model.layout.stop_token_ids,
              "pad_token_id": model.tokenizer.pad_token_id if model.tokenizer.pad_token_id is not None
              else model.layout.stop_token_ids[0]}
    kwargs.update(generate_kwargs)
    try:
        with neutral_generation_config(model.base_llm):
            return model.base_llm.generate(inputs_embeds=inputs["inputs_embeds"],
                                           attention_mask=inputs["attention_mask"], max_new_tokens=max_new_tokens,
                                           **kwargs)
    finally:
        if model.plora is not None:
            model.plora.clear_prefill()


def tiny_causal_lm(arch, seed=0, vocab_size=101, hidden_size=64, num_layers=2, num_heads=4):
    """A random Llama or Qwen2 (``arch``) small enough for decoding tests, sdpa attention, eval mode."""
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    cfg_cls, model_cls = (LlamaConfig, LlamaForCausalLM) if arch == "llama" else (Qwen2Config, Qwen2ForCausalLM)
    cfg = cfg_cls(vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                  num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=2,
                  max_position_embeddings=512 if hidden_size > 64 else 256, initializer_range=0.1)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(seed)
    return model_cls(cfg).eval()


def left_padded_batch(model, lengths, seed=1):
    """``(inputs_embeds [B, T, H], attention_mask [B, T])``: random prompts of ``lengths``, left-padded, on the
    model's device."""
    device = model.get_input_embeddings().weight.device
    g = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.randint(3, model.config.vocab_size, (len(lengths), width), generator=g).to(device)
    mask = torch.zeros(len(lengths), width, dtype=torch.long, device=device)
    for i, n in enumerate(lengths):
        mask[i, width - n:] = 1
    with torch.no_grad():
        return model.get_input_embeddings()(ids), mask


def hf_greedy_tokens(model, embeds, mask, max_new_tokens, stops):
    """HF ``generate()`` greedy (the reference of ``GreedyDecoder``): each row's new tokens up to its first stop id."""
    out = model.generate(inputs_embeds=embeds, attention_mask=mask, max_new_tokens=max_new_tokens, min_new_tokens=1,
                         do_sample=False, num_beams=1, eos_token_id=stops, pad_token_id=stops[0])
    return [row[: next((i for i, t in enumerate(row) if t in stops), len(row))] for row in out.tolist()]
