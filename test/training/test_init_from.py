"""RE-LLM's initialisation from a trained BLSP-Emo model (fusion_init), without running stage 4."""
import pytest
import torch

from rellm.testing.toy_models import toy_speech_llm
from rellm.training.align import init_from_experiment


@pytest.fixture
def blsp_dir(tokenizer, tmp_path):
    source = toy_speech_llm(tokenizer, emotion_dim=0, seed=3)
    source.save_final(tmp_path / "blsp" / "final")
    return tmp_path / "blsp", source


@pytest.mark.parametrize("fusion_init", ["fresh", "expand"])
def test_lora_and_heads_continue_and_the_adapter_follows_fusion_init(tokenizer, blsp_dir, fusion_init):
    folder, source = blsp_dir
    model = toy_speech_llm(tokenizer, emotion_dim=8, seed=5)
    before = {k: v.clone() for k, v in model.adapter.state_dict().items()}
    init_from_experiment(model, folder, fusion_init)
    src = source.own_state_dict()
    for name, value in model.own_state_dict().items():
        if not name.startswith("adapter."):
            assert torch.equal(value, src[name]), name  # LoRA and both heads continue from BLSP-Emo
    w0 = model.adapter.convs[0].weight
    if fusion_init == "fresh":  # the released code: a new randomly initialised fusion adapter
        assert all(torch.equal(model.adapter.state_dict()[k], v) for k, v in before.items())
    else:
        assert torch.equal(w0[:24, :24], source.adapter.convs[0].weight[:24]) and float(w0[:24, 24:].abs().max()) == 0
        assert float(w0[24:32].abs().min()) > 0  # the new channels are random, not zero


def test_a_speech_only_model_follows_fusion_init_too_and_unknown_values_are_refused(tokenizer, blsp_dir):
    """The matched control (blsp_emo_ft: RE-LLM without the emotion nuance module) starts like RE-LLM: a fresh adapter
    with fusion_init=fresh even though BLSP-Emo's has the same shape, BLSP-Emo's adapter with expand."""
    folder, source = blsp_dir
    control = toy_speech_llm(tokenizer, emotion_dim=0, seed=5)
    before = control.adapter.convs[0].weight.detach().clone()
    assert not torch.equal(before, source.adapter.convs[0].weight)
    init_from_experiment(control, folder, "fresh")
    assert torch.equal(control.adapter.convs[0].weight, before)
    init_from_experiment(control, folder, "expand")
    assert torch.equal(control.adapter.convs[0].weight, source.adapter.convs[0].weight)
    with pytest.raises(ValueError, match="fusion_init"):
        init_from_experiment(control, folder, "zeros")
