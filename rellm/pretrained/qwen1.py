"""Import a Qwen(1) checkpoint (Qwen-7B-Chat, ``model_type: qwen``) as a plain transformers Qwen2 folder.

Qwen(1) ships its own modelling and tokenizer code (``trust_remote_code``), which we never run. Its
computation is the Qwen2 architecture of transformers for every sequence inside its ``seq_length``
(2048 for Qwen-7B-Chat), so the weights are renamed (``docs/pretrained_models.md#importing-qwen-7b-chat``):

    transformer.wte                  -> model.embed_tokens
    transformer.h.N.ln_1 / ln_2      -> model.layers.N.input_layernorm / post_attention_layernorm
    transformer.h.N.attn.c_attn      -> self_attn.q_proj, k_proj, v_proj (rows split in thirds, bias too)
    transformer.h.N.attn.c_proj      -> self_attn.o_proj
    transformer.h.N.mlp.w1 / w2      -> mlp.up_proj / gate_proj (w2 is the one passed through SiLU)
    transformer.h.N.mlp.c_proj       -> mlp.down_proj
    transformer.ln_f                 -> model.norm
    lm_head                          -> lm_head (not tied)

What differs beyond ``seq_length``: Qwen(1) then rescales its rotary base (dynamic NTK) and multiplies
the queries by log-n factors (``use_dynamic_ntk``, ``use_logn_attn``); plain Qwen2 does neither, so
logits of longer sequences differ (the recipes stay far below 2048 tokens: prompts + 30 s of speech
at 160 ms per token + 256 response tokens is about 500). ``model_max_length`` of the tokenizer and
``max_position_embeddings`` are set to ``seq_length`` to make that limit visible.

The tokenizer: ``qwen.tiktoken`` (lines ``base64(token) rank``) becomes a byte-level BPE
``tokenizers`` model with Qwen's split pattern and NFC normalisation; the special tokens
``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>``, ``<|extra_0|>``..``<|extra_204|>`` follow the ranks,
in Qwen's order, so every id is the original's. Qwen-7B-Chat's ChatML layout (``make_context`` in its
``qwen_generation_utils.py``, default system prompt "You are a helpful assistant.") becomes the chat
template. No ``tiktoken`` package is needed.
"""
import base64
import datetime
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rellm.pretrained.checkpoint_files import iter_shards, weight_files
from rellm.pretrained.errors import ConversionError

log = logging.getLogger("rellm.pretrained")

CONVERTER_VERSION = 1
TIKTOKEN_FILE = "qwen.tiktoken"
# Qwen(1)'s split pattern (tokenization_qwen.py): GPT-4's, except single digits (\p{N}, not \p{N}{1,3}).
QWEN_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
                r"""\s*[\r\n]+|\s+(?!\S)|\s+""")
ENDOFTEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = (ENDOFTEXT, IM_START, IM_END) + tuple(f"<|extra_{i}|>" for i in range(205))
DEFAULT_SYSTEM = "You are a helpful assistant."
# ChatML as Qwen-7B-Chat's make_context writes it: every turn "<|im_start|>{role}\n{content}<|im_end|>\n",
# a default system turn when the conversation has none.
CHAT_TEMPLATE = (
    "{%- if not messages or messages[0]['role'] != 'system' %}"
    "{{- '<|im_start|>system\\n" + DEFAULT_SYSTEM + "<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
_SKIPPED_BUFFERS = ("rotary_emb.inv_freq",)  # recomputed buffers some exports include


# ---------------------------------------------------------------------------- config
def read_qwen1_config(folder):
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise ConversionError(f"{folder} has no config.json; point at the Qwen(1) snapshot folder (e.g. Qwen-7B-Chat)")
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    if config.get("model_type") != "qwen":
        raise ConversionError(f"{path}: model_type is {config.get('model_type')!r}, not 'qwen' (Qwen(1)); "
                              "Qwen1.5/Qwen2 folders load directly, without import")
    return config


def qwen2_config_dict(qwen):
    """The transformers ``Qwen2Config`` arguments of a Qwen(1) ``config.json`` dict (checked)."""
    hidden, heads = int(qwen["hidden_size"]), int(qwen["num_attention_heads"])
    kv_channels = int(qwen.get("kv_channels", hidden // heads))
    problems = []
    if kv_channels * heads != hidden:
        problems.append(f"kv_channels*heads = {kv_channels * heads} != hidden_size {hidden}")
    if float(qwen.get("rotary_pct", 1.0)) != 1.0:
        problems.append(f"rotary_pct = {qwen.get('rotary_pct')} (partial rotary)")
    if not qwen.get("no_bias", True):
        problems.append("no_bias = false (biases on c_proj / MLP)")
    if qwen.get("tie_word_embeddings", False):
        problems.append("tie_word_embeddings = true")
    if problems:
        raise ConversionError("this Qwen(1) variant has no exact Qwen2 equivalent: " + "; ".join(problems))
    seq_length = int(qwen.get("seq_length", qwen.get("max_position_embeddings", 2048)))
    return {
        "architectures": ["Qwen2ForCausalLM"],
        "vocab_size": int(qwen["vocab_size"]),
        "hidden_size": hidden,
        "intermediate_size": int(qwen["intermediate_size"]) // 2,
        "num_hidden_layers": int(qwen["num_hidden_layers"]),
        "num_attention_heads": heads,
        "num_key_value_heads": heads,
        "hidden_act": "silu",
        "max_position_embeddings": seq_length,
        "rms_norm_eps": float(qwen.get("layer_norm_epsilon", 1e-6)),
        "rope_theta": float(qwen.get("rotary_emb_base", 10000)),
        "tie_word_embeddings": False,
        "use_sliding_window": False,
        "attention_dropout": 0.0,
        "initializer_range": float(qwen.get("initializer_range", 0.02)),
        "bos_token_id": None,
        "eos_token_id": None,  # set from the tokenizer
    }


# ---------------------------------------------------------------------------- weights
def map_qwen1_tensors(state, src_prefix="transformer.", head_key="lm_head.weight", dst_prefix=""):
    """Rename a Qwen(1) state dict (or the part of it under ``src_prefix``) to Qwen2's names.

    ``state`` may hold other keys: only ``src_prefix...`` and ``head_key`` are read. Returns
    ``(mapped, used_keys)``; any ``src_prefix`` key that is not a known Qwen(1) tensor is an error.
    """
    mapped, used = {}, []
    simple = {"wte.weight": "model.embed_tokens.weight", "ln_f.weight": "model.norm.weight"}
    layer = {"ln_1.weight": "input_layernorm.weight", "ln_2.weight": "post_attention_layernorm.weight",
             "attn.c_proj.weight": "self_attn.o_proj.weight", "mlp.w1.weight": "mlp.up_proj.weight",
             "mlp.w2.weight": "mlp.gate_proj.weight", "mlp.c_proj.weight": "mlp.down_proj.weight"}
    for key, value in state.items():
        if key == head_key:
            mapped[dst_prefix + "lm_head.weight"] = value
            used.append(key)
            continue
        if not key.startswith(src_prefix):
            continue
        rest = key[len(src_prefix):]
        if ".lora_" in rest:  # LoRA matrices of a wrapped Qwen(1) (BLSP-Emo): the caller maps them
            continue
        used.append(key)
        if rest in simple:
            mapped[dst_prefix + simple[rest]] = value
            continue
        parts = rest.split(".", 2)
        if len(parts) == 3 and parts[0] == "h" and parts[1].isdigit():
            n, name = parts[1], parts[2]
            base = f"{dst_prefix}model.layers.{n}."
            if name in layer:
                mapped[base + layer[name]] = value
                continue
            if name in ("attn.c_attn.weight", "attn.c_attn.bias"):
                kind = name.rsplit(".", 1)[1]
                if value.shape[0] % 3:
                    raise ConversionError(f"{key}: {tuple(value.shape)} does not split in three (q, k, v)")
                for proj, part in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0)):
                    mapped[f"{base}self_attn.{proj}.{kind}"] = part.contiguous()
                continue
        if rest.endswith(_SKIPPED_BUFFERS):
            log.info("skipping %s (a buffer the model recomputes)", key)
            continue
        raise ConversionError(f"unexpected Qwen(1) tensor {key} {tuple(value.shape)}; this converter knows the "
                              "Qwen-7B(-Chat) layout only")
    return mapped, used


# ---------------------------------------------------------------------------- tokenizer
def read_tiktoken_ranks(path):
    """``{token bytes: rank}`` from a ``qwen.tiktoken`` file (``base64 rank`` per line)."""
    ranks = {}
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                token, rank = line.split()
                ranks[base64.b64decode(token, validate=True)] = int(rank)
            except ValueError:
                raise ConversionError(f"{path}:{number}: expected 'base64-token rank', got {line[:60]!r}") from None
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise ConversionError(f"{path}: ranks are not 0..{len(ranks) - 1} without gaps")
    return ranks


def build_qwen_tokenizer(tiktoken_path, model_max_length=2048):
    """A ``PreTrainedTokenizerFast`` with Qwen(1)'s ids, special tokens and Qwen-7B-Chat's chat template."""
    from tokenizers import AddedToken, normalizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    ranks = read_tiktoken_ranks(tiktoken_path)

    class _Ranks(TikTokenConverter):
        def load_tiktoken_bpe(self, _url):  # the ranks read above; no tiktoken package, no download
            return ranks

    backend = _Ranks(vocab_file=str(tiktoken_path), pattern=QWEN_PATTERN).converted()
    backend.normalizer = normalizers.NFC()  # QWenTokenizer.tokenize normalises to NFC first
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    for offset, token in enumerate(SPECIAL_TOKENS):
        if backend.token_to_id(token) != len(ranks) + offset:
            raise ConversionError(f"special token {token} got id {backend.token_to_id(token)}, "
                                  f"expected {len(ranks) + offset}")
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token=ENDOFTEXT, pad_token=ENDOFTEXT,
        model_max_length=int(model_max_length), chat_template=CHAT_TEMPLATE, clean_up_tokenization_spaces=False,
    )
    return tokenizer, len(ranks)


# ---------------------------------------------------------------------------- conversion
def convert_qwen1(src, dst, dtype=None, qwen_config=None, src_prefix="transformer.", head_key="lm_head.weight"):
    """Convert the Qwen(1) snapshot ``src`` into the Qwen2 folder ``dst`` (written atomically).

    ``dtype``: None keeps the checkpoint's dtype. Returns a dict of details (for the card).
    ``qwen_config`` (a Qwen(1) config dict), ``src_prefix`` and ``head_key`` convert a Qwen(1) held
    inside another checkpoint (the released BLSP-Emo: ``qwen_model.model.transformer.*``); its other
    tensors are then left out. Alone, a tensor that is not Qwen(1)'s is an error.
    """
    from safetensors.torch import save_file
    from transformers import GenerationConfig, Qwen2Config

    src, dst = Path(src).expanduser(), Path(dst).expanduser()
    embedded = qwen_config is not None
    qwen = qwen_config if embedded else read_qwen1_config(src)
    tiktoken = src / TIKTOKEN_FILE
    if not tiktoken.is_file():
        raise ConversionError(f"{src} has no {TIKTOKEN_FILE}; the Qwen(1) snapshot is incomplete")
    files = weight_files(src)
    config_args = qwen2_config_dict(qwen)
    tokenizer, num_ranks = build_qwen_tokenizer(tiktoken, config_args["max_position_embeddings"])
    if num_ranks + len(SPECIAL_TOKENS) > config_args["vocab_size"]:
        raise ConversionError(f"{src}: {num_ranks} ranks + {len(SPECIAL_TOKENS)} special tokens exceed "
                              f"vocab_size {config_args['vocab_size']}")
    dst.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".build-{dst.name}-", dir=dst.parent))
    try:
        weight_map, saved_dtype, count = {}, None, 0
        for i, (path, shard) in enumerate(iter_shards(src), 1):
            mapped, used = map_qwen1_tensors(shard, src_prefix, head_key)
            leftover = sorted(set(shard) - set(used) - {k for k in shard if k.endswith(_SKIPPED_BUFFERS)})
            if leftover and not embedded:
                raise ConversionError(f"{path.name}: tensors outside the Qwen(1) model: {leftover[:5]}")
            if not mapped:
                continue
            if dtype is not None:
                mapped = {k: v.to(dtype) for k, v in mapped.items()}
            name = "model.safetensors" if len(files) == 1 else f"model-{i:05d}-of-{len(files):05d}.safetensors"
            save_file({k: v.contiguous() for k, v in mapped.items()}, str(build / name), metadata={"format": "pt"})
            weight_map.update({k: name for k in mapped})
            saved_dtype = saved_dtype or next(iter(mapped.values())).dtype
            count += len(mapped)
            del shard, mapped
        expected = 3 + 12 * config_args["num_hidden_layers"]  # embed, norm, head; 2 norms, q,k,v (w+b), o, 3 MLP
        if count != expected:
            raise ConversionError(f"{src}: {count} Qwen2 tensors, expected {expected}; the checkpoint is incomplete")
        if len(files) > 1:
            with open(build / "model.safetensors.index.json", "w", encoding="utf-8") as f:
                json.dump({"metadata": {}, "weight_map": dict(sorted(weight_map.items()))}, f, indent=1)
        dtype_name = str(saved_dtype).replace("torch.", "")
        ids = {t: tokenizer.convert_tokens_to_ids(t) for t in (ENDOFTEXT, IM_END)}
        config = Qwen2Config(**{**config_args, "eos_token_id": ids[ENDOFTEXT], "pad_token_id": ids[ENDOFTEXT],
                                "dtype": dtype_name})
        config.save_pretrained(build)
        GenerationConfig(eos_token_id=[ids[IM_END], ids[ENDOFTEXT]], pad_token_id=ids[ENDOFTEXT],
                         do_sample=False).save_pretrained(build)
        tokenizer.save_pretrained(build)
        details = {
            "source": str(src.resolve()), "source_files": {p.name: p.stat().st_size for p in files},
            "source_model_type": "qwen", "seq_length": config_args["max_position_embeddings"],
            "use_dynamic_ntk": qwen.get("use_dynamic_ntk"), "use_logn_attn": qwen.get("use_logn_attn"),
            "bpe_ranks": num_ranks, "special_tokens": len(SPECIAL_TOKENS), "dtype": dtype_name,
            "converter": "rellm.pretrained.qwen1", "converter_version": CONVERTER_VERSION,
            "converted": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "note": "logits equal Qwen(1)'s for sequences up to seq_length; beyond it Qwen(1) applies dynamic NTK "
                    "and log-n attention scaling, which this Qwen2 folder does not",
        }
        with open(build / "import_card.json", "w", encoding="utf-8") as f:
            json.dump(details, f, indent=1)
        _replace_dir(build, dst)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    log.info("imported Qwen(1) %s -> %s (%d tensors, %s)", src, dst, count, dtype_name)
    return details


def _replace_dir(build, final):
    from rellm.pretrained.fetch import _replace_dir as replace
    from rellm.pretrained.fetch import _shareable

    _shareable(build)
    replace(build, final)


# ---------------------------------------------------------------------------- local imports (registry names)
@dataclass(frozen=True)
class LocalImport:
    """A model the user downloads, named by an environment variable, imported once into the cache."""

    name: str
    env: str  # environment variable holding the snapshot folder
    convert: str  # converter: "qwen1"
    description: str
    download: str  # where to get the snapshot


LOCAL_IMPORTS = {
    "qwen-7b-chat": LocalImport(
        name="qwen-7b-chat", env="QWEN_7B_CHAT", convert="qwen1",
        description="Qwen-7B-Chat (the RE-LLM / BLSP-Emo LLM), imported from the user's Qwen(1) snapshot "
                    "into a plain Qwen2 folder",
        download="https://huggingface.co/Qwen/Qwen-7B-Chat (config.json, qwen.tiktoken, model-*.safetensors "
                 "and its index; about 15 GB)"),
}


def imported_dir(name, cache_dir=None):
    from rellm.pretrained.fetch import cache_root

    return cache_root(cache_dir) / "models" / name


def _import_current(name, source, cache_dir=None):
    card_path = imported_dir(name, cache_dir) / "import_card.json"
    if not card_path.is_file():
        return False
    with open(card_path, encoding="utf-8") as f:
        card = json.load(f)
    if card.get("converter_version") != CONVERTER_VERSION:
        return False
    return source is None or card.get("source") == str(Path(source).expanduser().resolve())


def ensure_imported(name, source=None, cache_dir=None, force=False):
    """The cache folder of the local import ``name``, converting it first when needed.

    ``source`` (default: the folder in ``$<env>``) is the user's snapshot. A conversion from the same
    source by the current converter is reused; another source (or ``force``) converts again.
    """
    from rellm.pretrained.fetch import _lock, cache_root

    spec = LOCAL_IMPORTS[name]
    source = source or os.environ.get(spec.env) or None
    final = imported_dir(name, cache_dir)
    if not force and _import_current(name, source, cache_dir):
        return final
    if source is None:
        raise FileNotFoundError(
            f"{name} is not imported yet and ${spec.env} is not set: download {spec.download}, then set "
            f"{spec.env}=/path/to/snapshot (environment or the recipe's db.local.sh) or run "
            f"'python -m rellm.pretrained import-qwen1 /path/to/snapshot --name {name}'")
    if not Path(source).expanduser().is_dir():
        raise FileNotFoundError(f"${spec.env}={source} is not a folder; expected the {name} snapshot ({spec.download})")
    with _lock(cache_root(cache_dir) / "models" / f".{name}.lock"):
        if not force and _import_current(name, source, cache_dir):
            return final
        log.info("importing %s from %s into %s (once; later uses reuse it)", name, source, final)
        convert_qwen1(source, final)
    return final
