import pytest
import torch

from rellm.models.speech_llm import SpeechLLM
from rellm.training.toy import toy_llm, toy_tokenizer


@pytest.fixture(scope="session")
def tokenizer():
    return toy_tokenizer()


@pytest.fixture
def make_model(tokenizer):
    """A SpeechLLM over a fresh 2-layer random Llama; ``nonzero_lora`` makes LoRA change outputs."""

    def make(emotion_dim=8, speech_dim=24, lora_scope="speech", nonzero_lora=True, lora_dropout=0.0, seed=0):
        torch.manual_seed(seed)
        model = SpeechLLM(toy_llm(len(tokenizer), seed=seed), speech_dim=speech_dim, emotion_dim=emotion_dim,
                          tokenizer=tokenizer, lora_r=4, lora_alpha=8, lora_dropout=lora_dropout,
                          lora_target_modules=["q_proj", "v_proj", "down_proj"], lora_scope=lora_scope)
        if nonzero_lora:
            with torch.no_grad():
                for name, p in model.llm.named_parameters():
                    if "lora_B" in name:
                        p.normal_(0, 0.5)
        return model.eval()

    return make
