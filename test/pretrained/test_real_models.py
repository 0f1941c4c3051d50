"""The three converted registry models with their real weights (fetched once into the cache).

The Whisper checks compare with the ctranslate2 engine running the original
model.bin (the converter itself never uses ctranslate2); the SmolLM2 checks
compare the re-saved folder with transformers' GGUF load.
"""
import sys

import numpy as np
import pytest
import torch

from rellm.pretrained import REGISTRY, load_causal_lm, load_text_encoder, load_whisper, mean_pool, read_card
from rellm.testing.prerequisites import require_module


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_card_records_the_pinned_source(name, request):
    folder = request.getfixturevalue({"whisper-tiny.en": "whisper_tiny_dir", "smollm2-135m-instruct": "smollm2_dir",
                                      "minilm-l6": "minilm_dir"}[name])
    card = read_card(name, cache_dir=folder.parent.parent)
    spec = REGISTRY[name]
    assert card["source"]["package"] == spec.package and card["source"]["version"] == spec.version
    assert card["source"]["wheel_sha256"] == spec.wheel_sha256
    assert card["converter_version"] == spec.converter_version


def test_whisper_tokenizer_has_specials_and_timestamps_in_place(whisper_tiny_dir):
    from transformers import WhisperProcessor

    tok = WhisperProcessor.from_pretrained(whisper_tiny_dir).tokenizer
    assert len(tok) == 51864
    assert tok.convert_ids_to_tokens([50256, 50257, 50362, 50363, 51863]) == [
        "<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>", "<|0.00|>", "<|30.00|>"]
    assert max(tok.all_special_ids) == 50362  # pitfall 4: the timestamp origin is the id after this
    words = tok(" yes", add_special_tokens=False).input_ids
    # 50363 + 50 = 50413 is 1.00 s (20 ms per step); with a wrong origin this would read <|2.12|>/<|3.12|>.
    assert tok.decode([50363, *words, 50413], decode_with_timestamps=True) == "<|0.00|> yes<|1.00|>"


@pytest.mark.slow
def test_whisper_encoder_matches_ctranslate2(whisper_tiny_dir, whisper_ct2_dir, espeak_sentences, noise_clip):
    ctranslate2 = require_module("ctranslate2")
    model, processor = load_whisper(whisper_tiny_dir)
    waves = [w for _, w in espeak_sentences[:3]] + [noise_clip]
    feats = processor.feature_extractor(waves, sampling_rate=16000, return_tensors="np").input_features
    with torch.no_grad():
        ours = model.model.encoder(torch.from_numpy(feats)).last_hidden_state.numpy()
    engine = ctranslate2.models.Whisper(str(whisper_ct2_dir), device="cpu", compute_type="float32")
    reference = np.array(engine.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(feats))))
    assert ours.shape == reference.shape == (4, 1500, 384)
    assert np.abs(ours).max() > 1.0  # not a degenerate output
    assert np.abs(ours - reference).max() < 1e-3


@pytest.mark.slow
def test_whisper_greedy_transcripts_are_token_identical_to_ctranslate2(
        whisper_tiny_dir, whisper_ct2_dir, espeak_sentences):
    ctranslate2 = require_module("ctranslate2")
    jiwer = require_module("jiwer")
    model, processor = load_whisper(whisper_tiny_dir)
    texts, waves = zip(*espeak_sentences)
    feats = processor.feature_extractor(list(waves), sampling_rate=16000, return_tensors="np").input_features
    with torch.no_grad():
        ours = model.generate(torch.from_numpy(feats), num_beams=1, do_sample=False)
    engine = ctranslate2.models.Whisper(str(whisper_ct2_dir), device="cpu", compute_type="float32")
    results = engine.generate(ctranslate2.StorageView.from_array(np.ascontiguousarray(feats)),
                              [["<|startoftranscript|>", "<|notimestamps|>"]] * len(texts), beam_size=1)
    eot = processor.tokenizer.eos_token_id
    hyps = []
    for row, result in zip(ours.tolist(), results):
        row = row[: row.index(eot)] if eot in row else row  # batch rows are padded with eot
        assert row == result.sequences_ids[0]
        hyps.append(processor.tokenizer.decode(row, skip_special_tokens=True))
    norm = jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.Strip(), jiwer.RemoveMultipleSpaces()])
    wer = jiwer.wer([norm(t) for t in texts], [norm(h) for h in hyps])
    assert wer < 0.3, list(zip(texts, hyps))  # eSpeak is intelligible to tiny.en (~8 % WER in the reference)


@pytest.mark.slow
def test_whisper_timestamps_start_at_zero_and_end_near_the_audio_length(whisper_tiny_dir, espeak_sentences):
    model, processor = load_whisper(whisper_tiny_dir)
    text, wave = espeak_sentences[0]
    feats = processor.feature_extractor(wave, sampling_rate=16000, return_tensors="pt").input_features
    with torch.no_grad():
        ids = model.generate(feats, return_timestamps=True)[0].tolist()
    decoded = processor.tokenizer.decode(ids, decode_with_timestamps=True)
    assert decoded.startswith("<|0.00|>") and text.split()[0] in decoded
    last = processor.tokenizer.convert_ids_to_tokens(max(i for i in ids if i >= 50363))
    assert abs(float(last.strip("<|>")) - len(wave) / 16000) < 0.6


def test_smollm2_chat_template_renders_chatml(smollm2_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    messages = [{"role": "system", "content": "You are kind."}, {"role": "user", "content": "I feel sad."}]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == ("<|im_start|>system\nYou are kind.<|im_end|>\n<|im_start|>user\nI feel sad.<|im_end|>\n"
                    "<|im_start|>assistant\n")
    assert tok.eos_token == "<|im_end|>" and tok.convert_tokens_to_ids("<|im_start|>") == 1


@pytest.mark.slow
def test_smollm2_folder_equals_the_gguf_load(smollm2_dir, smollm2_gguf, monkeypatch):
    require_module("gguf")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with monkeypatch.context() as m:
        m.setitem(sys.modules, "gguf", None)  # the converted folder must not need the gguf package
        model, tok = load_causal_lm(smollm2_dir)
    assert model.dtype == torch.float32 and not getattr(model, "is_quantized", False)
    assert not hasattr(model.config, "quantization_config")
    gguf_tok = AutoTokenizer.from_pretrained(smollm2_gguf.parent, gguf_file=smollm2_gguf.name)
    prompt = tok.apply_chat_template([{"role": "user", "content": "I failed my driving test again today."}],
                                     tokenize=False, add_generation_prompt=True)
    ids = tok(prompt, return_tensors="pt").input_ids
    assert ids[0].tolist() == gguf_tok(prompt).input_ids
    gguf_model = AutoModelForCausalLM.from_pretrained(smollm2_gguf.parent, gguf_file=smollm2_gguf.name,
                                                      dtype=torch.float32)
    with torch.no_grad():
        ours = model.generate(ids, max_new_tokens=12, do_sample=False)
        theirs = gguf_model.generate(ids, max_new_tokens=12, do_sample=False)
    assert ours.tolist() == theirs.tolist()
    assert ours.shape[1] > ids.shape[1]
    assert tok.decode(ours[0, ids.shape[1]:], skip_special_tokens=True).strip()


def test_minilm_puts_paraphrases_closer_than_unrelated_sentences(minilm_dir):
    model, tok = load_text_encoder(minilm_dir)
    sentences = ["I am so happy that I passed my exam.", "I'm really glad I got through the test.",
                 "The train to Berlin leaves at seven.", "Please pass me the salt."]
    batch = tok(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        emb = torch.nn.functional.normalize(mean_pool(model(**batch).last_hidden_state, batch.attention_mask), dim=-1)
    assert emb.shape == (4, 384)
    sim = emb @ emb.T
    assert sim[0, 1] > 0.6
    assert sim[0, 1] > sim[0, 2] + 0.3 and sim[0, 1] > sim[0, 3] + 0.3
