import pytest

from rellm.pretrained.testing import smollm2_dir  # noqa: F401  (session fixture for the slow tests)
from rellm.training.toy import save_toy_llm, toy_llm, toy_tokenizer


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
    import torch

    from rellm.models.speech_llm import SpeechLLM

    def make(emotion_dim=8, speech_dim=24, nonzero_lora=True, seed=0):
        torch.manual_seed(seed)
        model = SpeechLLM(toy_llm(len(toy_tok), seed=seed), speech_dim=speech_dim, emotion_dim=emotion_dim,
                          tokenizer=toy_tok, lora_r=4, lora_alpha=8, lora_dropout=0.0,
                          lora_target_modules=["q_proj", "v_proj", "down_proj"])
        if nonzero_lora:
            with torch.no_grad():
                for name, p in model.llm.named_parameters():
                    if "lora_B" in name:
                        p.normal_(0, 0.5)
        return model.eval()

    return make
