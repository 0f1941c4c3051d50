"""Convert the released BLSP-Emo checkpoint (``Blsp2Model``) into a rellm experiment's model
(``rellm.training.blsp_emo_import`` writes the experiment folder).

The released folder (config.json with ``whisper_config``/``qwen_config``/``lora_config``, weights
``whisper_model.*``, ``adapter.*``, ``qwen_model.model.*`` with partial-LoRA matrices,
``hidden2emotion.*``; ``qwen.tiktoken``, ``preprocessor_config.json``) becomes::

    EXP_DIR/final/model.json              SpeechLLM constructor config, base models, prompts, provenance
    EXP_DIR/final/trainable.safetensors   adapter.*, llm.*lora_*, emotion_head.*, avd_head.* (own_state_dict names)
    EXP_DIR/whisper/                      its Whisper encoder as an HF Whisper folder (encoder weights only)
    EXP_DIR/llm/                          only with --llm embedded: its Qwen(1) as a Qwen2 folder

which stage 5 scores as the ``blsp_emo`` system and stage 4 uses as RE-LLM's ``init_from``.

Name mapping (the Subsampler has our SpeechAdapter's architecture):
    adapter.subsampler.conv_layers.{i}  -> adapter.convs.{i}
    adapter.fc1 / fc2                   -> adapter.fc1 / fc2
    adapter.speech_ln                   -> adapter.norm
    hidden2emotion                      -> emotion_head.proj  (label ids neutral, happy, angry, sad, surprise: ours)
    LoRA on Qwen(1) (lora_A/lora_B.default, scaling alpha/r):
        attn.c_attn  -> self_attn.q_proj, k_proj, v_proj: the same lora_A, lora_B split in row thirds
        attn.c_proj  -> self_attn.o_proj      mlp.w1 -> mlp.up_proj      mlp.w2 -> mlp.gate_proj
        mlp.c_proj   -> mlp.down_proj         (BLSP's target "c_proj" matches both c_proj layers)

The AVD head is not part of BLSP-Emo: the importer writes it with PyTorch's default Linear initialisation
(seed 0) and ``avd_head_trained: false`` in model.json (RE-LLM trains it from there).
"""
import json
import logging
import shutil
from pathlib import Path

import torch

from rellm.pretrained.checkpoint_files import iter_shards
from rellm.pretrained.errors import ConversionError
from rellm.pretrained.qwen1 import TIKTOKEN_FILE, convert_qwen1, map_qwen1_tensors, own_storage

log = logging.getLogger("rellm.pretrained")

IMPORTER_VERSION = 1
QWEN_PREFIX = "qwen_model.model.transformer."
QWEN_HEAD = "qwen_model.model.lm_head.weight"
LORA_MAP = {  # Qwen(1) module (relative to a block) -> our target modules
    "attn.c_attn": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
    "attn.c_proj": ("self_attn.o_proj",),
    "mlp.w1": ("mlp.up_proj",),
    "mlp.w2": ("mlp.gate_proj",),
    "mlp.c_proj": ("mlp.down_proj",),
}
# SpeechLLM.own_state_dict names of the peft LoRA matrices (llm = PeftModel(Qwen2ForCausalLM)).
LORA_NAME = "llm.base_model.model.model.layers.{layer}.{module}.{matrix}.default.weight"
SCOPES = {"audio": "speech", "global": "all"}
EMBEDDED = "embedded"
# generation_config.json values the released generate.py keeps (recorded in model.json's imported_from)
DECODING_KEYS = ("repetition_penalty", "do_sample", "top_p", "top_k", "temperature", "chat_format", "eos_token_id",
                 "pad_token_id")


def read_blsp_config(src):
    path = Path(src) / "config.json"
    if not path.is_file():
        raise ConversionError(f"{src} has no config.json; point at the released BLSP-Emo folder (a Blsp2Model)")
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    if not {"whisper_config", "qwen_config"} <= set(config):
        raise ConversionError(f"{path} is not a Blsp2Model config (no whisper_config / qwen_config)")
    problems = []
    if config.get("adapter_type", "subsampler") != "subsampler":
        problems.append(f"adapter_type {config.get('adapter_type')!r} (only the conv subsampler is supported)")
    if int(config.get("adapter_hidden_layers", 0)) != 0:
        problems.append("adapter_hidden_layers > 0 (Whisper layers inside the adapter)")
    kernels = [int(k) for k in str(config.get("conv_kernel_sizes", "5,5,5")).split(",")]
    if len(set(kernels)) != 1 or kernels[0] % 2 != 1:
        problems.append(f"conv_kernel_sizes {config.get('conv_kernel_sizes')!r} (one odd kernel size for every layer)")
    if int(config.get("num_emotions", 5)) != 5:
        problems.append(f"num_emotions {config.get('num_emotions')} (the 5-class taxonomy is expected)")
    if config.get("lora_config") and config.get("lora_scope", "audio") not in SCOPES:
        problems.append(f"lora_scope {config.get('lora_scope')!r} (audio or global)")
    if problems:
        raise ConversionError(f"{path}: not importable: " + "; ".join(problems))
    return config


def _split_lora(key, value, hidden, lora_state):
    """Map one BLSP LoRA tensor (``qwen_model.model.transformer.h.N.<module>.lora_X.default.weight``)."""
    rest = key[len(QWEN_PREFIX):]
    parts = rest.split(".")
    if parts[0] != "h" or not parts[1].isdigit() or len(parts) != 7 or parts[-2:] != ["default", "weight"]:
        raise ConversionError(f"unexpected LoRA tensor {key}")
    layer, module, matrix = parts[1], ".".join(parts[2:4]), parts[4]
    if module not in LORA_MAP or matrix not in ("lora_A", "lora_B"):
        raise ConversionError(f"LoRA on {module} ({key}) has no Qwen2 counterpart in this importer")
    targets = LORA_MAP[module]
    if matrix == "lora_B" and len(targets) == 3:
        if value.shape[0] != 3 * hidden:
            raise ConversionError(f"{key}: {tuple(value.shape)} is not 3 x hidden rows")
        pieces = value.chunk(3, dim=0)
    else:
        pieces = [value] * len(targets)
    for target, piece in zip(targets, pieces):
        lora_state[LORA_NAME.format(layer=layer, module=target, matrix=matrix)] = piece.float().contiguous()
    return {t.rsplit(".", 1)[1] for t in targets}


class _LlmCheck:
    """Compares the checkpoint's frozen Qwen(1) with the Qwen2 folder the experiment will load."""

    def __init__(self, folder, rtol=1e-2, atol=1e-5):
        from safetensors import safe_open

        folder = Path(folder)
        index = folder / "model.safetensors.index.json"
        if index.is_file():
            with open(index, encoding="utf-8") as f:
                weight_map = json.load(f)["weight_map"]
        elif (folder / "model.safetensors").is_file():
            with safe_open(folder / "model.safetensors", framework="pt") as f:
                weight_map = {k: "model.safetensors" for k in f.keys()}  # noqa: SIM118
        else:
            raise ConversionError(f"{folder}: no safetensors weights to compare the LLM with")
        self.folder, self.weight_map, self.rtol, self.atol = folder, weight_map, rtol, atol
        self.seen, self.worst = set(), (0.0, None)

    def compare(self, mapped):
        from safetensors import safe_open

        by_file = {}
        for key in mapped:
            if key not in self.weight_map:
                raise ConversionError(f"the LLM folder {self.folder} has no {key}: BLSP-Emo's LLM is another model")
            by_file.setdefault(self.weight_map[key], []).append(key)
        for name, keys in by_file.items():
            with safe_open(self.folder / name, framework="pt") as f:
                for key in keys:
                    ref, ours = f.get_tensor(key).float(), mapped[key].float()
                    if ref.shape != ours.shape or not torch.allclose(ours, ref, rtol=self.rtol, atol=self.atol):
                        diff = (ours - ref).abs().max().item() if ref.shape == ours.shape else "shape"
                        raise ConversionError(
                            f"{key} of the BLSP-Emo checkpoint differs from {self.folder} (max diff {diff}): the "
                            "experiment's LLM must be the Qwen-7B-Chat BLSP-Emo was trained on; pass the right "
                            "--llm, or --llm embedded to use the LLM stored in the checkpoint")
                    diff = (ours - ref).abs().max().item()
                    if diff > self.worst[0]:
                        self.worst = (diff, key)
                    self.seen.add(key)

    def finish(self):
        missing = sorted(set(self.weight_map) - self.seen)
        if missing:
            raise ConversionError(f"the BLSP-Emo checkpoint lacks LLM tensors that {self.folder} has: {missing[:4]}")
        return {"llm_tensors_compared": len(self.seen), "llm_max_abs_diff": self.worst[0]}


def _whisper_folder(src, config, state, dst):
    """Write the encoder as an HF Whisper folder that ``load_whisper_encoder`` reads (encoder weights only)."""
    from safetensors.torch import save_file
    from transformers import WhisperConfig, WhisperFeatureExtractor

    dst.mkdir(parents=True, exist_ok=True)
    wconfig = WhisperConfig(**config["whisper_config"])
    wconfig.architectures = ["WhisperForConditionalGeneration"]
    wconfig.save_pretrained(dst)
    save_file(own_storage({f"model.encoder.{k}": v for k, v in state.items()}), str(dst / "model.safetensors"),
              metadata={"format": "pt"})
    pre = Path(src) / "preprocessor_config.json"
    if pre.is_file():
        shutil.copyfile(pre, dst / "preprocessor_config.json")
    else:
        log.warning("%s has no preprocessor_config.json; writing Whisper's default feature extractor (%d mel bins)",
                    src, wconfig.num_mel_bins)
        WhisperFeatureExtractor(feature_size=wconfig.num_mel_bins).save_pretrained(dst)


def whisper_tolerances(*dtypes):
    """``(rtol, atol)`` for comparing two copies of one Whisper stored in ``dtypes``: the rounding of the coarsest
    (bf16 keeps 8 significant bits: a value rounded to it moves by up to 2^-8 of itself, so rtol is its eps,
    2^-7), never tighter than 1e-3; atol 1e-5 covers values rounded near zero (fp16 subnormals)."""
    eps = max((torch.finfo(d).eps for d in dtypes if d.is_floating_point), default=0.0)
    return max(1e-3, float(eps)), 1e-5


def check_whisper_equal(state, name_or_path, rtol=None, atol=None):
    """Compare the checkpoint's Whisper encoder with the one stage 2 uses; returns the max abs difference.

    Two copies of one encoder may differ by the rounding of the dtypes they are stored in (the released
    checkpoint in fp32, bf16 or fp16; stage 2's in fp32 or fp16): the tolerances are those of the coarser one
    (:func:`whisper_tolerances`) unless given. Anything beyond is another encoder, and the error says which
    tensor, by how much and in which dtypes.
    """
    from rellm.pretrained.loaders import _encoder_only_state_dict, load_whisper_encoder, resolve

    where = resolve(name_or_path)
    ref = _encoder_only_state_dict(where) if Path(where).is_dir() else None
    if ref is None:
        ref = load_whisper_encoder(where, dtype=None)[0].state_dict()
    worst = 0.0
    for key, value in state.items():
        if key not in ref:
            if key == "embed_positions.weight":
                continue  # fixed sinusoids, recomputed by WhisperEncoder when a checkpoint omits them
            raise ConversionError(f"the stage-2 Whisper {name_or_path} has no encoder tensor {key}: it is another "
                                  "architecture than BLSP-Emo's encoder")
        other = ref[key]
        if other.shape != value.shape:
            raise ConversionError(
                f"BLSP-Emo's Whisper encoder has {key} of shape {tuple(value.shape)}, the stage-2 Whisper {name_or_path} "
                f"{tuple(other.shape)}: another Whisper size; set whisper in conf/extract.yaml to the imported "
                "<exp>/whisper folder (BLSP-Emo's own encoder)")
        r, a = (rtol, atol) if rtol is not None else whisper_tolerances(value.dtype, other.dtype)
        a = atol if atol is not None else a
        ours, theirs = value.float(), other.float()
        close = torch.isclose(ours, theirs, rtol=r, atol=a)
        diff = (ours - theirs).abs()
        if not bool(close.all()):
            at = int(diff.argmax())
            raise ConversionError(
                f"BLSP-Emo's Whisper encoder differs from {name_or_path} at {key} beyond the rounding of their dtypes "
                f"(checkpoint {str(value.dtype).replace('torch.', '')}, stage 2 {str(other.dtype).replace('torch.', '')}: "
                f"rtol {r:g}, atol {a:g}): {int((~close).sum())} of {close.numel()} values, the largest difference "
                f"{float(diff.flatten()[at]):.3g} at {float(theirs.flatten()[at]):.3g}; stage 2 must extract features "
                "with BLSP-Emo's own encoder (set whisper in conf/extract.yaml to the imported <exp>/whisper folder)")
        worst = max(worst, float(diff.max()) if diff.numel() else 0.0)
    return worst


def convert_blsp_emo(src, exp_dir, llm="qwen-7b-chat", check_llm=True, check_whisper=None, prompts=None):
    """Convert the released BLSP-Emo folder ``src`` for the experiment ``exp_dir``: its Whisper encoder into
    ``exp_dir/whisper`` (and its LLM into ``exp_dir/llm`` with ``llm="embedded"``); returns ``(state, meta)``, the
    trained tensors under ``SpeechLLM.own_state_dict`` names (without the A/V/D head BLSP-Emo lacks) and the
    ``model.json`` dict. ``rellm.training.blsp_emo_import`` writes them as the experiment's ``final/``.

    ``llm``: the registry name or folder of the Qwen(1) import the experiment loads (its weights are
    compared with the checkpoint's when ``check_llm``), or ``"embedded"`` to convert the checkpoint's
    own LLM into ``exp_dir/llm``. ``check_whisper``: the Whisper (name or folder) stage 2 uses, compared
    with the checkpoint's encoder. ``prompts``: recorded in model.json.
    """
    from rellm.pretrained.loaders import resolve

    src, exp_dir = Path(src).expanduser(), Path(exp_dir)
    config = read_blsp_config(src)
    if not (src / TIKTOKEN_FILE).is_file():
        raise ConversionError(f"{src} has no {TIKTOKEN_FILE}; the released BLSP-Emo folder is incomplete")
    qcfg = config["qwen_config"]
    hidden, layers = int(qcfg["hidden_size"]), int(qcfg["num_hidden_layers"])
    lora_cfg = config.get("lora_config") or {}
    checker = None
    if llm != EMBEDDED and check_llm:
        checker = _LlmCheck(resolve(llm))
    whisper, adapter, head, lora, targets, base_count = {}, {}, {}, {}, set(), 0
    adapter_names = {"adapter.fc1.weight": "fc1.weight", "adapter.fc2.weight": "fc2.weight",
                     "adapter.speech_ln.weight": "norm.weight", "adapter.speech_ln.bias": "norm.bias"}
    for path, shard in iter_shards(src):
        base = {}
        for key, value in shard.items():
            if key.startswith("whisper_model."):
                whisper[key[len("whisper_model."):]] = value
            elif key.startswith("adapter.subsampler.conv_layers."):
                adapter["convs." + key[len("adapter.subsampler.conv_layers."):]] = value.float()
            elif key in adapter_names:
                adapter[adapter_names[key]] = value.float()
            elif key == "hidden2emotion.weight":
                head["emotion_head.proj.weight"] = value.float()
            elif key.startswith(QWEN_PREFIX) and ".lora_" in key:
                targets |= _split_lora(key, value, hidden, lora)
            elif key.startswith(QWEN_PREFIX) or key == QWEN_HEAD:
                base[key] = value
            elif key.endswith("rotary_emb.inv_freq"):
                continue
            else:
                raise ConversionError(f"{path.name}: unexpected tensor {key} in the BLSP-Emo checkpoint")
        mapped, _ = map_qwen1_tensors(base, QWEN_PREFIX, QWEN_HEAD)
        base_count += len(mapped)
        if checker is not None:
            checker.compare(mapped)
        del shard, base, mapped
    expected_base = 3 + 12 * layers
    if base_count != expected_base:
        raise ConversionError(f"{src}: {base_count} LLM tensors, expected {expected_base}; the checkpoint is incomplete")
    n_convs = len(str(config.get("conv_kernel_sizes", "5,5,5")).split(","))
    expected_adapter = {f"convs.{i}.{p}" for i in range(n_convs) for p in ("weight", "bias")} | set(adapter_names.values())
    if set(adapter) != expected_adapter:
        raise ConversionError(f"{src}: adapter tensors {sorted(adapter)} do not match the conv subsampler "
                              f"({sorted(expected_adapter)})")
    if "emotion_head.proj.weight" not in head:
        raise ConversionError(f"{src}: no hidden2emotion.weight (the SER head); is this the BLSP-Emo checkpoint?")
    if lora_cfg and not lora:
        raise ConversionError(f"{src}: config.json has a lora_config but the weights hold no LoRA matrices")
    if lora:
        expected_lora = 2 * layers * sum(len(v) for v in LORA_MAP.values() if {t.rsplit(".", 1)[1] for t in v} <= targets)
        if len(lora) != expected_lora:
            raise ConversionError(f"{src}: {len(lora)} LoRA matrices after mapping, expected {expected_lora}")
    state = {f"adapter.{k}": v for k, v in adapter.items()}
    state.update(head)
    state.update(lora)

    exp_dir.mkdir(parents=True, exist_ok=True)
    details = {"source": str(src.resolve()), "importer": "rellm.pretrained.blsp_emo", "importer_version": IMPORTER_VERSION}
    generation = src / "generation_config.json"
    if generation.is_file():  # what the released generate.py decoded with (docs/released_code.md#decoding)
        with open(generation, encoding="utf-8") as f:
            values = json.load(f)
        details["generation_config"] = {k: values[k] for k in DECODING_KEYS if k in values}
        log.info("%s: the released decoding settings (generate.py keeps them): %s; conf/infer.yaml sets rellm's",
                 generation, details["generation_config"])
    if check_whisper:
        details["whisper_max_abs_diff"] = check_whisper_equal(whisper, check_whisper)
        details["whisper_checked_against"] = str(check_whisper)
    _whisper_folder(src, config, whisper, exp_dir / "whisper")
    if llm == EMBEDDED:
        convert_qwen1(src, exp_dir / "llm", qwen_config=qcfg, src_prefix=QWEN_PREFIX, head_key=QWEN_HEAD)
        llm_name = str((exp_dir / "llm").resolve())
    else:
        llm_name = str(llm)
        if checker is not None:
            details.update(checker.finish())
    # lora_target_modules in the order our configs list them
    order = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    model = {
        "llm": llm_name, "speech_dim": int(config["whisper_config"]["d_model"]), "emotion_dim": 0,
        "llm_dtype": "auto", "lora_r": int(lora_cfg.get("r", 0)) if lora else 0,
        "lora_alpha": lora_cfg.get("lora_alpha", 16), "lora_dropout": float(lora_cfg.get("lora_dropout", 0.0)),
        "lora_target_modules": [m for m in order if m in targets],
        "lora_scope": SCOPES.get(config.get("lora_scope", "audio"), "speech"),
        "adapter_bottleneck_dim": int(config.get("adapter_inner_dim", 512)), "cache_prompt_prefix": True,
    }
    meta = {
        "model": model,
        "base_models": {"llm": llm_name, "speech_encoder": str((exp_dir / "whisper").resolve()),
                        "emotion_encoder": None},
        "prompts": dict(prompts or {}),
        "steps": ["released"],
        "avd_head_trained": False,
        "imported_from": details,
    }
    log.info("converted BLSP-Emo %s (%d adapter, %d LoRA tensors; LLM %s)", src, len(adapter), len(lora), llm_name)
    # the q/k/v LoRA A of one c_attn is one tensor under three names: each is written as its own storage
    return own_storage(state), meta


def __getattr__(name):
    # ``rellm.pretrained.blsp_emo.import_blsp_emo``, the importer's earlier home, still works for scripts that use it;
    # the experiment writing itself lives above the model layer (rellm.training.blsp_emo_import)
    if name == "import_blsp_emo":
        from rellm.training.blsp_emo_import import import_blsp_emo

        return import_blsp_emo
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
