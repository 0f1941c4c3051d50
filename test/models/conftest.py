import pytest

from rellm.testing.toy_models import toy_speech_llm, toy_tokenizer


@pytest.fixture(scope="session")
def tokenizer():
    return toy_tokenizer()


@pytest.fixture
def make_model(tokenizer):
    """A SpeechLLM over a fresh 2-layer random Llama; ``nonzero_lora`` makes LoRA change outputs."""

    def make(**kwargs):
        return toy_speech_llm(tokenizer, **kwargs)

    return make
