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
def own_storage(tensors):
    """``{name: tensor}`` in which no two tensors share memory, each contiguous.

    Splitting a fused matrix yields views of one storage, and a LoRA matrix shared by q, k and v is one tensor
    under three names: safetensors refuses to write either ("Some tensors share memory"). A tensor that shares
    its storage with another one (or is a strided view) is cloned; the others are written as they are, so a
    7B checkpoint is not copied in memory for nothing.
    """
    users = {}
    for value in tensors.values():
        if value.numel():
            users[value.untyped_storage().data_ptr()] = users.get(value.untyped_storage().data_ptr(), 0) + 1
    out = {}
    for key, value in tensors.items():
        value = value.detach()
        shared = value.numel() and users[value.untyped_storage().data_ptr()] > 1
        out[key] = value.contiguous().clone() if shared else value.contiguous()
    return out


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
def convert_qwen1(src, dst, dtype=None, qwen_config=None, src_prefix="transformer.", head_key="lm_head.weight",
                  source_check=None):
    """Convert the Qwen(1) snapshot ``src`` into the Qwen2 folder ``dst`` (written atomically).

    ``dtype``: None keeps the checkpoint's dtype. Returns a dict of details (for the card).
    ``qwen_config`` (a Qwen(1) config dict), ``src_prefix`` and ``head_key`` convert a Qwen(1) held
    inside another checkpoint (the released BLSP-Emo: ``qwen_model.model.transformer.*``); its other
    tensors are then left out. Alone, a tensor that is not Qwen(1)'s is an error. ``source_check``: what was
    checked of the snapshot (its revision, :func:`check_qwen_7b_chat`), recorded in the card.
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
            save_file(own_storage(mapped), str(build / name), metadata={"format": "pt"})
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
            **({"source_check": source_check} if source_check else {}),
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


# ---------------------------------------------------------------------------- the pinned Qwen-7B-Chat revision
# The released BLSP-Emo and RE-LLM name no revision of Qwen/Qwen-7B-Chat: the recipes pin the latest one on the hub
# (docs/pretrained_models.md#the-qwen-7b-chat-revision), and check what can be checked offline.
QWEN_7B_CHAT_REPO = "Qwen/Qwen-7B-Chat"
QWEN_7B_CHAT_REVISION = "93a65d34827a3cc269b727e67004743b723e2f83"
REVISION_ENV = "QWEN_7B_CHAT_REVISION"  # "any": use another revision deliberately; a commit: expect that one
ANY_REVISION = "any"
# What that revision's files say: the architecture (config.json), the decoding defaults the released scripts
# inherit (generation_config.json: the repetition penalty 1.1 and top_p 0.8 of the September 2023 update, which
# the first release lacked) and the tokenizer's size (qwen.tiktoken).
QWEN_7B_CHAT_CONFIG = {"model_type": "qwen", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
                       "kv_channels": 128, "intermediate_size": 22016, "vocab_size": 151936,
                       "rotary_emb_base": 10000, "layer_norm_epsilon": 1e-06, "no_bias": True}
QWEN_7B_CHAT_GENERATION = {"chat_format": "chatml", "eos_token_id": 151643, "pad_token_id": 151643,
                           "repetition_penalty": 1.1, "top_k": 0, "top_p": 0.8}
QWEN_7B_CHAT_RANKS = 151643
_HEX40 = set("0123456789abcdef")


def _is_commit(text):
    return isinstance(text, str) and len(text) == 40 and set(text) <= _HEX40


def snapshot_revision(folder):
    """``(commit, how)`` of a downloaded snapshot when its layout records one, else ``(None, why)``.

    Known layouts: the Hugging Face cache (``.../snapshots/<commit>/``), a ``git clone`` (``.git/HEAD``) and
    ``huggingface-cli download --local-dir`` (``.cache/huggingface/download/*.metadata``, commit on line 1).
    """
    folder = Path(folder).expanduser().absolute()
    if folder.parent.name == "snapshots" and _is_commit(folder.name):
        return folder.name, "Hugging Face cache folder name"
    head = folder / ".git" / "HEAD"
    if head.is_file():
        ref = head.read_text(encoding="utf-8").strip()
        if _is_commit(ref):
            return ref, "git HEAD"
        if ref.startswith("ref: "):
            name = ref[5:].strip()
            loose = folder / ".git" / name
            if loose.is_file() and _is_commit(loose.read_text(encoding="utf-8").strip()):
                return loose.read_text(encoding="utf-8").strip(), f"git {name}"
            packed = folder / ".git" / "packed-refs"
            if packed.is_file():
                for line in packed.read_text(encoding="utf-8").splitlines():
                    parts = line.split()
                    if len(parts) == 2 and parts[1] == name and _is_commit(parts[0]):
                        return parts[0], f"git {name} (packed)"
    meta = folder / ".cache" / "huggingface" / "download" / "config.json.metadata"
    if meta.is_file():
        first = meta.read_text(encoding="utf-8").splitlines()[:1]
        if first and _is_commit(first[0].strip()):
            return first[0].strip(), "huggingface-cli --local-dir metadata"
    return None, "the folder records no revision (not a Hugging Face cache snapshot, git clone or --local-dir download)"


def hub_file_hashes(folder):
    """``{file: sha256}`` the hub listed for the snapshot's large (LFS) files, as the download recorded them: the blob
    names of the Hugging Face cache, or the etags of a ``--local-dir`` download's metadata. Empty when neither."""
    folder = Path(folder).expanduser().absolute()
    hashes = {}
    for path in sorted(folder.iterdir()):
        if path.is_symlink():
            target = Path(os.readlink(path)).name
            if len(target) == 64 and set(target) <= _HEX40:
                hashes[path.name] = target
    meta_dir = folder / ".cache" / "huggingface" / "download"
    if meta_dir.is_dir():
        for meta in sorted(meta_dir.glob("*.metadata")):
            lines = meta.read_text(encoding="utf-8").splitlines()
            etag = lines[1].strip().strip('"') if len(lines) > 1 else ""
            if len(etag) == 64 and set(etag) <= _HEX40:
                hashes.setdefault(meta.name[: -len(".metadata")], etag)
    return hashes


def verify_file_hashes(folder):
    """Check every file :func:`hub_file_hashes` knows against its sha256 (reads them all: minutes for 15 GB).
    Returns ``{file: sha256}``; a mismatch is an error naming the file."""
    from rellm.pretrained.fetch import sha256_file

    folder = Path(folder).expanduser()
    checked = {}
    for name, expected in hub_file_hashes(folder).items():
        if not (folder / name).is_file():
            continue
        got = sha256_file(folder / name)
        if got != expected:
            raise ConversionError(f"{folder / name}: sha256 {got} but the hub listed {expected} for it; the file is "
                                  "damaged or was changed: download it again")
        checked[name] = got
    return checked


def _read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _count_ranks(path):
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


def check_qwen_7b_chat(folder, revision=None, verify_files=False):
    """Check that ``folder`` is Qwen-7B-Chat at the pinned revision (or ``revision``; ``"any"`` checks nothing).

    What is checked: the revision, where the snapshot's layout records it (:func:`snapshot_revision`); always the
    architecture in config.json, the decoding defaults in generation_config.json and the size of qwen.tiktoken;
    with ``verify_files`` the sha256 of every large file the download recorded a hash for
    (:func:`hub_file_hashes`). Returns what was checked (for the import card); a difference is one error line
    saying what differs and how to get the pinned revision or opt out.
    """
    revision = revision or os.environ.get(REVISION_ENV) or QWEN_7B_CHAT_REVISION
    folder = Path(folder).expanduser()
    if revision == ANY_REVISION:
        return {"revision_check": f"skipped ({REVISION_ENV}={ANY_REVISION} or --revision {ANY_REVISION})"}
    if not _is_commit(revision):
        raise ConversionError(f"{REVISION_ENV}={revision!r} is neither a 40-character commit nor {ANY_REVISION!r}")
    problems = []
    found, how = snapshot_revision(folder)
    if found is not None and found != revision:
        problems.append(f"it is revision {found} ({how})")
    config = read_qwen1_config(folder)  # not a Qwen(1) snapshot at all: that error first
    problems += [f"config.json has {k} {config.get(k)!r} (expected {v!r})" for k, v in QWEN_7B_CHAT_CONFIG.items()
                 if config.get(k) != v]
    generation = folder / "generation_config.json"
    if not generation.is_file():
        problems.append("it has no generation_config.json")
    else:
        values = _read_json(generation)
        problems += [f"generation_config.json has {k} {values.get(k)!r} (expected {v!r})"
                     for k, v in QWEN_7B_CHAT_GENERATION.items() if values.get(k) != v]
    ranks = _count_ranks(folder / TIKTOKEN_FILE) if (folder / TIKTOKEN_FILE).is_file() else None
    if ranks != QWEN_7B_CHAT_RANKS:
        problems.append(f"{TIKTOKEN_FILE} has {ranks} ranks (expected {QWEN_7B_CHAT_RANKS})")
    if problems:
        raise ConversionError(
            f"{folder} is not {QWEN_7B_CHAT_REPO} at revision {revision[:7]}, the one the recipes pin: "
            + "; ".join(problems[:4]) + ("; ..." if len(problems) > 4 else "")
            + f". Download it (huggingface-cli download {QWEN_7B_CHAT_REPO} --revision {revision}), or set "
            f"{REVISION_ENV}={ANY_REVISION} (import-qwen1 --revision {ANY_REVISION}) to use this snapshot deliberately")
    details = {"revision_expected": revision, "revision_found": found, "revision_found_by": how,
               "revision_check": "config.json, generation_config.json and qwen.tiktoken match"
                                 + ("; the revision matches" if found else "; the revision itself is not recorded")}
    if verify_files:
        details["files_sha256_verified"] = verify_file_hashes(folder)
    return details


# ---------------------------------------------------------------------------- local imports (registry names)
@dataclass(frozen=True)
class LocalImport:
    """A model the user downloads, named by an environment variable, imported once into the cache."""

    name: str
    env: str  # environment variable holding the snapshot folder
    convert: str  # converter: "qwen1"
    description: str
    download: str  # where to get the snapshot
    check: object = None  # a check of the snapshot (folder, revision, verify_files) -> details, or None


LOCAL_IMPORTS = {
    "qwen-7b-chat": LocalImport(
        name="qwen-7b-chat", env="QWEN_7B_CHAT", convert="qwen1",
        description="Qwen-7B-Chat (the RE-LLM / BLSP-Emo LLM), imported from the user's Qwen(1) snapshot "
                    "into a plain Qwen2 folder",
        download=f"https://huggingface.co/Qwen/Qwen-7B-Chat at revision {QWEN_7B_CHAT_REVISION} (config.json, "
                 "generation_config.json, qwen.tiktoken, model-*.safetensors and its index; about 15 GB)",
        check=check_qwen_7b_chat),
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


def ensure_imported(name, source=None, cache_dir=None, force=False, revision=None):
    """The cache folder of the local import ``name``, converting it first when needed.

    ``source`` (default: the folder in ``$<env>``) is the user's snapshot. A conversion from the same
    source by the current converter is reused; another source (or ``force``) converts again. The snapshot is
    checked first (Qwen-7B-Chat: :func:`check_qwen_7b_chat` against ``revision``, default the pinned one or
    ``$QWEN_7B_CHAT_REVISION``; its files' hashes too when it is converted); the card records what was checked.
    """
    from rellm.pretrained.fetch import _lock, cache_root

    spec = LOCAL_IMPORTS[name]
    source = source or os.environ.get(spec.env) or None
    final = imported_dir(name, cache_dir)
    if source is not None and spec.check is not None and Path(source).expanduser().is_dir():
        spec.check(source, revision)  # cheap (three small files): every stage naming the model checks its snapshot
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
        checked = spec.check(source, revision, verify_files=True) if spec.check is not None else {}
        log.info("importing %s from %s into %s (once; later uses reuse it)", name, source, final)
        convert_qwen1(source, final, source_check=checked)
    return final
