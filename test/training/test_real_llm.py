"""Integration check with the real SmolLM2-135M-Instruct (skipped where it has not been fetched)."""
import pytest
import torch

from rellm.models.packing import segment_batch
from rellm.models.speech_llm import SpeechLLM
from rellm.testing.prerequisites import missing
from rellm.testing.toy_models import TOY_SENTENCES
from rellm.training.losses import response_ce

SYSTEM = "You are a helpful assistant. Your response should fulfill requests with empathy toward user's emotion tone."
INSTRUCTION = "Continue the following sentence based on the conveyed emotion tone in a coherent style: "


@pytest.mark.slow
def test_smollm2_speech_llm_response_loss_falls():
    pretrained = pytest.importorskip("rellm.pretrained")
    try:
        llm, tok = pretrained.load_causal_lm("smollm2-135m-instruct")
    except (OSError, pretrained.FetchError) as err:
        missing(f"smollm2-135m-instruct not fetched: {err}")
    torch.manual_seed(1)
    model = SpeechLLM(llm, speech_dim=384, emotion_dim=32, tokenizer=tok, lora_dropout=0.0,
                      lora_target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    model.train()
    layout = model.layout
    prompts = [layout.prompt_ids(SYSTEM, INSTRUCTION)] * 2
    tails = [layout.response_ids(r)[0] for r in TOY_SENTENCES[8:10]]
    p, pl = segment_batch(prompts, "cpu")
    t, tl = segment_batch(tails, "cpu")
    ls = torch.full((2,), len(layout.header_ids))
    g = torch.Generator().manual_seed(0)
    whisper, lengths, emo = torch.randn(2, 100, 384, generator=g).half(), torch.tensor([100, 80]), torch.randn(2, 32)
    opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=5e-4)
    losses = []
    for _ in range(4):
        out = model(whisper, lengths, emo, p, pl, t, tl, ls)
        loss = response_ce(out["logits"], out["target_ids"])
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.85 * losses[0], losses
