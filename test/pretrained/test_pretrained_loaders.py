"""Loaders on tiny random models saved as local HF folders (rellm.testing.pretrained_models: real tokenizers,
random weights)."""
import pytest
import torch
from transformers import (
    AutoTokenizer,
    LlamaForCausalLM,
    WhisperForConditionalGeneration,
    WhisperModel,
    WhisperProcessor,
)

from rellm.pretrained import load_causal_lm, load_text_encoder, load_whisper, load_whisper_encoder, mean_pool
from rellm.testing import pretrained_models as testing


@pytest.fixture(scope="module")
def tiny_whisper(tmp_path_factory):
    folder = testing.tiny_whisper(tmp_path_factory.mktemp("tiny_whisper"))
    return WhisperForConditionalGeneration.from_pretrained(folder).eval(), folder


def _features(batch=2, seed=0):
    return torch.randn(batch, 80, 3000, generator=torch.Generator().manual_seed(seed))


def test_whisper_encoder_is_loaded_alone_frozen_and_equal_to_the_full_models(tiny_whisper):
    model, folder = tiny_whisper
    encoder, feature_extractor = load_whisper_encoder(str(folder))
    assert type(encoder).__name__ == "WhisperEncoder" and not encoder.training
    assert all(not p.requires_grad for p in encoder.parameters())
    assert feature_extractor.feature_size == 80 and feature_extractor.sampling_rate == 16000
    feats = _features()
    with torch.no_grad():
        expected = model.model.encoder(feats).last_hidden_state
        assert torch.equal(encoder(feats).last_hidden_state, expected)


def test_whisper_encoder_from_sharded_and_whisper_model_checkpoints(tiny_whisper, tmp_path):
    model, folder = tiny_whisper
    processor = WhisperProcessor.from_pretrained(folder)
    model.save_pretrained(tmp_path / "sharded", max_shard_size="300KB")
    processor.save_pretrained(tmp_path / "sharded")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    base = WhisperModel(model.config)
    base.load_state_dict(model.model.state_dict())
    base.save_pretrained(tmp_path / "base")  # keys "encoder.*", not "model.encoder.*"
    processor.save_pretrained(tmp_path / "base")
    feats = _features(1, seed=1)
    with torch.no_grad():
        expected = model.model.encoder(feats).last_hidden_state
        for sub in ("sharded", "base"):
            encoder, _ = load_whisper_encoder(str(tmp_path / sub))
            assert torch.equal(encoder(feats).last_hidden_state, expected), sub


def test_whisper_dtype_is_what_the_caller_asks_not_what_was_saved(tiny_whisper, tmp_path):
    model, folder = tiny_whisper
    # Pitfall 6: transformers 5 would load an fp16 folder as fp16, which rejects fp32 features on CPU.
    model.to(torch.float16).save_pretrained(tmp_path / "fp16")
    model.to(torch.float32)
    WhisperProcessor.from_pretrained(folder).save_pretrained(tmp_path / "fp16")
    loaded, processor = load_whisper(str(tmp_path / "fp16"))
    assert loaded.dtype == torch.float32 and not loaded.training
    assert len(processor.tokenizer) == 51864
    with torch.no_grad():
        loaded.model.encoder(_features(1))  # fp32 input works
    encoder, _ = load_whisper_encoder(str(tmp_path / "fp16"), dtype=torch.bfloat16)
    assert {p.dtype for p in encoder.parameters()} == {torch.bfloat16}
    for keep_saved in (None, "auto"):
        encoder, _ = load_whisper_encoder(str(tmp_path / "fp16"), dtype=keep_saved)
        assert {p.dtype for p in encoder.parameters()} == {torch.float16}


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory):
    """A 2-layer random Llama with SmolLM2's tokenizer (ChatML template) whose pad token was removed."""
    folder = testing.tiny_causal_lm(tmp_path_factory.mktemp("tiny_llm"))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.pad_token == "<|im_end|>"
    tokenizer.pad_token = None
    tokenizer.save_pretrained(folder)
    return LlamaForCausalLM.from_pretrained(folder).eval(), folder


def test_causal_lm_keeps_the_chat_template_and_gets_a_pad_token(tiny_llm):
    model, folder = tiny_llm
    loaded, tokenizer = load_causal_lm(str(folder))
    assert not loaded.training and loaded.dtype == torch.float32
    assert tokenizer.pad_token == tokenizer.eos_token == "<|im_end|>"
    text = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False,
                                         add_generation_prompt=True)
    assert text.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    ids = tokenizer("I failed my driving test.", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, model(ids).logits)


def test_remote_code_is_never_run_unless_asked(tmp_path):
    folder = tmp_path / "custom"
    folder.mkdir()
    marker = tmp_path / "code_ran"
    (folder / "config.json").write_text(
        '{"model_type": "evil_lm", "auto_map": {"AutoConfig": "modeling_evil.EvilConfig", '
        '"AutoModelForCausalLM": "modeling_evil.EvilLM"}}')
    (folder / "tokenizer_config.json").write_text(
        '{"tokenizer_class": "EvilTok", "auto_map": {"AutoTokenizer": ["tok_evil.EvilTok", null]}}')
    payload = f"open({str(marker)!r}, 'w').write('ran')\n"
    (folder / "modeling_evil.py").write_text(payload)
    (folder / "tok_evil.py").write_text(payload)
    with pytest.raises(ValueError, match="trust_remote_code"):
        load_causal_lm(str(folder))
    assert not marker.exists()
    # The switch is passed through when the user opts in (then the repository code runs).
    with pytest.raises(Exception):  # noqa: B017  (the payload defines no classes)
        load_causal_lm(str(folder), trust_remote_code=True)
    assert marker.read_text() == "ran"


def test_text_encoder_mean_pooling_ignores_padding(tmp_path):
    model, tok = load_text_encoder(str(testing.tiny_text_encoder(tmp_path / "bert")))
    assert not model.training
    short, long = "I am fine.", "I have been waiting for the results of my exam all week long."
    batch = tok([short, long], padding=True, return_tensors="pt")
    alone = tok([short], return_tensors="pt")
    assert batch.attention_mask[0].sum() < batch.attention_mask.shape[1]  # the short one is padded
    with torch.no_grad():
        pooled = mean_pool(model(**batch).last_hidden_state, batch.attention_mask)
        single = mean_pool(model(**alone).last_hidden_state, alone.attention_mask)
        manual = model(**alone).last_hidden_state[0].mean(0)
    assert pooled.shape == (2, 32)
    assert torch.allclose(pooled[0], single[0], atol=1e-5)
    assert torch.allclose(single[0], manual, atol=1e-6)
