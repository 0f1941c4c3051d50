"""Loading the frozen LLM of a SpeechLLM."""
from pathlib import Path


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
