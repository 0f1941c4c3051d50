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
