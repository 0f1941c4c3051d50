"""The alignment losses fall when a toy speech-LLM overfits three utterances."""
import torch

from rellm.models.packing import segment_batch
from rellm.models.speech_llm import SpeechLLM
from rellm.testing.toy_models import TOY_SENTENCES, toy_llm
from rellm.training.losses import distillation_kl, response_ce

SYSTEM = "You are a helpful assistant."


def _batch(model, responses):
    prompts = [model.layout.prompt_ids(SYSTEM, "Continue: ")] * len(responses)
    tails = [model.layout.response_ids(r)[0] for r in responses]
    p_ids, p_lens = segment_batch(prompts, "cpu")
    t_ids, t_lens = segment_batch(tails, "cpu")
    return p_ids, p_lens, t_ids, t_lens, torch.full((len(responses),), len(model.layout.header_ids))


def _model(tokenizer):
    torch.manual_seed(0)
    return SpeechLLM(toy_llm(len(tokenizer), hidden_size=64), speech_dim=24, emotion_dim=8, tokenizer=tokenizer,
                     lora_r=4, lora_alpha=8, lora_dropout=0.0, lora_target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])


def test_response_ce_and_emotion_ce_fall_when_overfitting(tokenizer):
    model = _model(tokenizer).train()
    g = torch.Generator().manual_seed(1)
    whisper, lengths, emo = torch.randn(3, 60, 24, generator=g), torch.tensor([60, 50, 40]), torch.randn(3, 8, generator=g)
    labels = torch.tensor([0, 1, 2])
    segs = _batch(model, TOY_SENTENCES[8:11])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    history = []
    for _ in range(40):
        out = model(whisper, lengths, emo, *segs)
        resp = response_ce(out["logits"], out["target_ids"])
        emo_ce = torch.nn.functional.cross_entropy(out["emotion_logits"], labels)
        (resp + emo_ce).backward()
        opt.step()
        opt.zero_grad()
        history.append((resp.item(), emo_ce.item()))
    (r0, e0), (r1, e1) = history[0], history[-1]
    assert r1 < 0.75 * r0, history[::8]
    assert e1 < 0.2 * e0, history[::8]


def test_semantic_kl_falls_training_the_adapter_only(tokenizer):
    model = _model(tokenizer).train()
    model.set_trainable(adapter=True)
    assert all("adapter" in n for n, p in model.named_parameters() if p.requires_grad)
    g = torch.Generator().manual_seed(2)
    whisper, lengths = torch.randn(3, 60, 24, generator=g), torch.tensor([60, 50, 40])
    emo = torch.randn(3, 8, generator=g)
    segs = _batch(model, TOY_SENTENCES[:3])
    # Teacher: the frozen LLM reading the transcripts as text.
    t_prompts = [model.layout.prompt_ids(SYSTEM, "Continue: ") + model.layout.encode_content(t) for t in TOY_SENTENCES[5:8]]
    tp_ids, tp_lens = segment_batch(t_prompts, "cpu")
    teacher = model.teacher_logits(tp_ids, tp_lens, segs[2], segs[3], segs[4])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(30):
        out = model(whisper, lengths, emo, *segs)
        loss = distillation_kl(out["logits"], teacher, 2.0)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses[::6]
