"""Toy experiment folders for the web demo's browser test and screenshot: tiny random models, real tokenizers.

``write_toy_experiments(root)`` writes ``root/exp/rellm/official/seed1`` (with a small random emotion encoder
fused in) and its sibling ``root/exp/blsp_emo/official/seed1``, the layout stage 4 writes, over the cached
Whisper tiny.en (so transcripts are real) and a 2-layer random Llama (``rellm.testing.toy_models``) with
SmolLM2's tokenizer. Their replies are random words: they show the page works, not what a
trained model says. Loading both takes seconds on a CPU.
"""
from pathlib import Path

SPLIT, SEED = "official", 1


def write_toy_experiments(root):
    """``{"rellm": folder, "blsp_emo": folder}``: the two experiment folders written under ``root/exp``."""
    import torch
    from transformers import AutoTokenizer

    from rellm.models.emotion_encoder import EmotionEncoder, save_emotion_encoder, small_emotion_config
    from rellm.models.speech_llm import SpeechLLM
    from rellm.testing.pretrained_models import cached_model
    from rellm.testing.toy_models import toy_llm

    root = Path(root)
    whisper = cached_model("whisper-tiny.en")
    # untied output layer with peaked random logits: a tied random LLM copies the header's last token (a newline)
    # and so answers nothing visible
    llm = root / "models" / "llm"
    tokenizer = AutoTokenizer.from_pretrained(cached_model("smollm2-135m-instruct"))
    toy_llm(len(tokenizer), hidden_size=64).save_pretrained(llm)
    tokenizer.save_pretrained(llm)
    torch.manual_seed(0)
    encoder = save_emotion_encoder(EmotionEncoder(small_emotion_config(hidden_size=32, conv_dim=16)).eval(),
                                   root / "models" / "emotion_encoder")
    folders = {}
    for system, emotion_dim in (("rellm", 32), ("blsp_emo", 0)):
        torch.manual_seed(1)
        model = SpeechLLM(str(llm), speech_dim=384, emotion_dim=emotion_dim, lora_r=4, lora_alpha=8,
                          lora_target_modules=["q_proj", "v_proj"])
        folder = root / "exp" / system / SPLIT / f"seed{SEED}"
        model.save_final(folder / "final", extra={
            "system": system,
            "base_models": {"llm": str(llm), "speech_encoder": str(whisper),
                            "emotion_encoder": str(encoder) if emotion_dim else None},
            "avd_head_trained": bool(emotion_dim)})
        folders[system] = folder
    return folders
