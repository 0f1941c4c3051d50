"""Helpers of the Python API tests (imported by their conftest and tests): synthetic inputs and toy trained models
saved as stage 4 saves them."""
from pathlib import Path

import numpy as np
import torch

SENTENCES = (
    ("I can't believe you did that to me again.", "angry"),
    ("We finally got the keys to our new house today!", "happy"),
    ("My dog passed away last night.", "sad"),
)
WINDOW = 8.0  # the mini recipe's shortened Whisper window (extract.yaml), recorded in final/ as stage 4 does



def silence(seconds=2.0, sr=16000):
    return np.zeros(int(seconds * sr), dtype=np.float32)


def white_noise(seconds=3.0, sr=16000, level=0.1, seed=0):
    return (level * np.random.default_rng(seed).standard_normal(int(seconds * sr))).astype(np.float32)


def make_experiment(root, llm_dir, whisper_dir, emotion_dir=None, speech_dim=32, seed=0, window=WINDOW):
    """A stage-4-like experiment folder ``root/exp/<model>/official/seed1`` over the given base folders (RE-LLM when
    ``emotion_dir`` is given, else BLSP-Emo), with random non-zero LoRA so that LoRA changes the outputs."""
    from rellm.models.speech_llm import SpeechLLM

    emotion_dim = 32 if emotion_dir else 0
    torch.manual_seed(seed)
    model = SpeechLLM(str(llm_dir), speech_dim=speech_dim, emotion_dim=emotion_dim, lora_r=4, lora_alpha=8,
                      lora_dropout=0.0, lora_target_modules=["q_proj", "v_proj"])
    with torch.no_grad():
        for name, p in model.llm.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    exp = Path(root) / "exp" / ("rellm" if emotion_dir else "blsp_emo") / "official" / "seed1"
    model.save_final(exp / "final", extra={
        "base_models": {"llm": str(llm_dir), "speech_encoder": str(whisper_dir),
                        "emotion_encoder": str(emotion_dir) if emotion_dir else None},
        "avd_head_trained": bool(emotion_dir), "steps": ["semantic", "behaviour"],
        "speech_features": {"whisper": str(whisper_dir), "whisper_window_seconds": window}})
    return exp


def make_bases(root):
    """``(llm, whisper, emotion encoder)`` folders: a toy ChatML LLM, a 32-d random Whisper with tiny.en's processor,
    a small random emotion encoder (32-d embedding)."""
    from rellm.models.emotion_encoder import EmotionEncoder, save_emotion_encoder, small_emotion_config
    from rellm.testing.pretrained_models import tiny_whisper
    from rellm.testing.toy_models import save_toy_llm

    root = Path(root)
    llm = save_toy_llm(root / "llm")
    whisper = tiny_whisper(root / "whisper", d_model=32)
    torch.manual_seed(0)
    emotion = save_emotion_encoder(EmotionEncoder(small_emotion_config(hidden_size=32, conv_dim=16)).eval(),
                                   root / "emotion_encoder")
    return llm, whisper, emotion
