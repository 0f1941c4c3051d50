"""The released training details as options (docs/released_code.md#training): how the target ends, where the KL
is taken, the warm-up curve; the paper recipes default to the released behaviour, the mini recipe to ours."""
import itertools
import json
import math
from pathlib import Path

import pytest
import torch

from rellm.data.pipelines import response_segment, student_segments_pipeline
from rellm.training.losses import distillation_kl
from rellm.utils.config import top_level_keys
from rellm.utils.lr_schedule import warmup_decay

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "test" / "fixtures" / "blsp_emo"
PAPER = ("TEMPLATE", "iemocap", "esd", "msp_podcast")


@pytest.fixture(scope="module")
def toy_tok():
    from rellm.testing.toy_models import toy_tokenizer

    return toy_tokenizer()


@pytest.fixture(scope="module")
def qwen_layout():
    """Qwen(1)'s tokenizer and chat layout, from the tiny reference-generated snapshot (ids are Qwen's scheme)."""
    from rellm.models.chat_layout import ChatLayout
    from rellm.pretrained.qwen1 import build_qwen_tokenizer

    tokenizer, _ = build_qwen_tokenizer(FIXTURES / "qwen1" / "qwen.tiktoken", 64)
    return ChatLayout(tokenizer)


def test_released_target_ends_like_the_released_data_processing(qwen_layout):
    """released: ``<|im_end|>`` + "\\n" + ``<|endoftext|>`` after the reply (src/instruction_dataset.py), all labelled;
    template: ``<|im_end|>`` only; a reply cut at the limit (early_stop) gets no end either way."""
    special = json.loads((FIXTURES / "expected_qwen1.json").read_text())["special_ids"]
    reference_suffix = json.loads((FIXTURES / "expected_blsp_emo.json").read_text())["suffix_ids"]
    im_end, eod = special["<|im_end|>"], special["<|endoftext|>"]
    newline = reference_suffix[1]  # the reference's tokenizer.encode("\n"), as its suffix holds it
    reply = "That's wonderful news, I'm so happy for you."
    content = qwen_layout.encode_content(reply)
    # the released suffix: <|im_end|>\n<|im_start|>assistant\n + reply + <|im_end|>\n<|endoftext|>
    header = reference_suffix + [newline]
    tail, label_start = response_segment(qwen_layout, reply, early_stop=False, target_end="released")
    assert tail == header + content + [im_end, newline, eod]
    assert tail[label_start:] == content + [im_end, newline, eod]  # what the released labels cover
    tail, label_start = response_segment(qwen_layout, reply, early_stop=False, target_end="template")
    assert tail == header + content + [im_end] and label_start == len(header)
    for end in ("released", "template"):
        assert response_segment(qwen_layout, reply, early_stop=True, target_end=end)[0] == header + content
    with pytest.raises(Exception, match="target_end must be one of template, released"):
        response_segment(qwen_layout, reply, target_end="eos")


def _kl(student, teacher, tau):
    p_t = torch.softmax(teacher / tau, -1)
    return (p_t * (torch.log_softmax(teacher / tau, -1) - torch.log_softmax(student / tau, -1))).sum(-1).mean()


@pytest.mark.parametrize("where", ["predicting", "targets"])
def test_kl_positions_select_the_rows_a_hand_computation_picks(toy_tok, where):
    """The semantic step's KL through the stage-4 segments and SpeechLLM equals the KL computed by hand on the full
    logits of both branches: at the positions predicting each labelled token (``predicting``), or, as the
    released response_kl, at the labelled tokens' own positions (``targets``: one row later, the last one too)."""
    from rellm.models.chat_layout import ChatLayout
    from rellm.testing.toy_models import toy_speech_llm

    model = toy_speech_llm(toy_tok, emotion_dim=0, nonzero_lora=False, seed=3)  # zero LoRA: the student is the LLM
    layout = ChatLayout(toy_tok)
    system, instruction = "You are a helpful assistant.", "Continue the following text in a coherent style: "
    response = "the cat sat on the mat"
    seg = student_segments_pipeline(layout, system, instruction, kl_positions=where)
    prompt, prompt_len, tail, tail_len, label_start = list(seg.func(response, False, "behaviour"))
    tail = torch.as_tensor(tail)
    real_tail, real_start = layout.response_ids(response)
    n_labels = len(real_tail) - real_start
    torch.manual_seed(1)
    whisper = torch.randn(1, 40, 24)
    with torch.no_grad():
        out = model(whisper, torch.tensor([40]), None, prompt[None], torch.tensor([prompt_len]),
                    tail[None], torch.tensor([tail_len]), torch.tensor([label_start]))
        text_prompt = torch.tensor(layout.prompt_ids(system, instruction) + layout.encode_content("the cat"))
        teacher = model.teacher_logits(text_prompt[None], torch.tensor([len(text_prompt)]), tail[None],
                                       torch.tensor([tail_len]), torch.tensor([label_start]))
        ours = distillation_kl(out["logits"], teacher, 2.0)
        # by hand: each branch's whole sequence (without any filler) through the LLM, rows picked by index
        E, M = model.encode_speech(whisper, torch.tensor([40]))
        embed = model.base_llm.get_input_embeddings()
        real = torch.tensor(real_tail)
        student_seq = torch.cat([embed(prompt), E[0][M[0]], embed(real)])
        teacher_seq = torch.cat([embed(text_prompt), embed(real)])
        s_full = model.base_llm(inputs_embeds=student_seq[None]).logits[0]
        t_full = model.base_llm(inputs_embeds=teacher_seq[None]).logits[0]
        shift = -1 if where == "predicting" else 0
        s_rows = [len(student_seq) - len(real) + real_start + i + shift for i in range(n_labels)]
        t_rows = [len(teacher_seq) - len(real) + real_start + i + shift for i in range(n_labels)]
        by_hand = _kl(s_full[s_rows], t_full[t_rows], 2.0)
    assert out["logits"].shape[0] == teacher.shape[0] == n_labels
    assert torch.allclose(ours, by_hand, atol=1e-5), (float(ours), float(by_hand))
    assert torch.allclose(out["logits"], s_full[s_rows], atol=1e-5) and torch.allclose(teacher, t_full[t_rows], atol=1e-5)
    other = [r + (1 if where == "predicting" else -1) for r in s_rows]  # the other setting's rows
    assert not torch.allclose(out["logits"], s_full[other], atol=1e-2)


def test_kl_positions_is_checked(toy_tok):
    from rellm.models.chat_layout import ChatLayout

    with pytest.raises(Exception, match="kl_positions must be one of predicting, targets"):
        student_segments_pipeline(ChatLayout(toy_tok), "s", "i", kl_positions="shifted")


def test_log_warmup_is_deepspeeds_curve():
    """DeepSpeed's WarmupDecayLR with its default warmup_type "log": log(step + 1) / log(warmup), then linear decay."""
    peak, warmup, total = 2e-5, 200, 1000
    values = [warmup_decay(s, warmup, total, peak, warmup_type="log") for s in range(total + 1)]
    assert values[0] == 0.0
    assert math.isclose(values[1], peak * math.log(2) / math.log(200))
    assert math.isclose(values[99], peak * math.log(100) / math.log(200))  # 0.869 x peak, linear: 0.5 x peak
    assert math.isclose(warmup_decay(99, warmup, total, peak), peak * 100 / 200)
    assert math.isclose(values[200], peak) and math.isclose(values[600], peak * 400 / 800) and values[1000] == 0.0
    assert all(a <= b for a, b in itertools.pairwise(values[:201]))
    with pytest.raises(ValueError, match="warmup_type"):
        warmup_decay(0, 10, 100, warmup_type="cosine")


def test_paper_recipes_train_as_released_and_mini_as_before():
    for recipe in PAPER + ("mini",):
        for model in ("blsp_emo", "rellm"):
            path = REPO / "egs" / recipe / "conf" / f"train_{model}.yaml"
            keys = set(top_level_keys(path))
            assert {"target_end", "kl_positions", "warmup_type", "train_emotion_head"} <= keys, path
            text = {line.split(":")[0]: line.split(":", 1)[1].split("#")[0].strip()
                    for line in path.read_text().splitlines() if line and not line[0].isspace() and ":" in line}
            released = recipe != "mini"
            assert text["target_end"] == ("released" if released else "template")
            assert text["kl_positions"] == ("targets" if released else "predicting")
            assert text["warmup_type"] == ("log" if released else "linear")
            # RE-LLM keeps the imported BLSP-Emo head frozen as released; BLSP-Emo trains its own
            expected_head = "false" if released and model == "rellm" else "true"
            assert text["train_emotion_head"] == expected_head, path
