import pytest

from rellm.testing.pretrained_models import smollm2_dir  # noqa: F401  (session fixture for the slow tests)
from rellm.testing.toy_models import save_toy_llm, toy_llm, toy_speech_llm, toy_tokenizer


@pytest.fixture(scope="session")
def toy_tok():
    return toy_tokenizer()


@pytest.fixture(scope="session")
def toy_llm_dir(tmp_path_factory):
    """A 2-layer random Llama + ChatML toy tokenizer saved as a local HF folder (loads in < 1 s)."""
    return save_toy_llm(tmp_path_factory.mktemp("toy_llm"))


@pytest.fixture
def make_toy_llm(toy_tok):
    def make(seed=0):
        return toy_llm(len(toy_tok), seed=seed)

    return make


@pytest.fixture
def make_model(toy_tok):
    """A SpeechLLM over a 2-layer random Llama with non-zero LoRA (so LoRA changes outputs)."""

    def make(emotion_dim=8, speech_dim=24, nonzero_lora=True, seed=0):
        return toy_speech_llm(toy_tok, emotion_dim=emotion_dim, speech_dim=speech_dim,
                              nonzero_lora=nonzero_lora, seed=seed)

    return make
