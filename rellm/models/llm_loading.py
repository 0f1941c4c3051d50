"""Loading the frozen LLM of a SpeechLLM, and the dtype names its configs use."""
from pathlib import Path

import torch

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}


def resolve_dtype(dtype, device="cpu"):
    """``None``/``"auto"`` -> bf16 on a bf16-capable GPU, else fp32; strings -> ``torch.dtype``."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        if str(device).startswith("cuda") and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    try:
        return DTYPES[str(dtype)]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)} or auto") from None


def load_causal_lm(name_or_path, dtype=None):
    """``(model, tokenizer)`` through ``rellm.pretrained`` (registry names, local folders)."""
    try:
        from rellm.pretrained import load_causal_lm as _load
    except ImportError:
        _load = None
    if _load is not None:
        return _load(name_or_path, dtype=dtype)
    if not Path(name_or_path).is_dir():
        raise FileNotFoundError(
            f"cannot load LLM {name_or_path!r}: rellm.pretrained is not available and it is not a local folder; "
            "run `python -m rellm.pretrained fetch smollm2-135m-instruct` or point llm_name at a HF model folder"
        )
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=dtype, local_files_only=True)
    return model, AutoTokenizer.from_pretrained(name_or_path, local_files_only=True)
