import pytest
import torch

from rellm.models.adapter import SpeechAdapter, conv_output_lengths, lengths_to_mask


@pytest.mark.parametrize("frames, tokens", [(50, 7), (250, 32), (500, 63), (1500, 188), (1, 1), (8, 1), (9, 2)])
def test_output_lengths_follow_the_conv_formula(frames, tokens):
    # method.md 1.3: 1 s -> 7 speech tokens, 5 s -> 32, 10 s -> 63, 30 s -> 188.
    assert int(conv_output_lengths(torch.tensor([frames]))[0]) == tokens


def test_adapter_output_shapes_and_mask_match_lengths():
    adapter = SpeechAdapter(input_dim=24, output_dim=32, bottleneck_dim=16)
    lengths = torch.tensor([250, 50, 9])
    E, M = adapter(torch.randn(3, 250, 24), lengths)
    assert E.shape == (3, 32, 32)  # the longest row sets N
    assert M.dtype == torch.bool
    assert M.sum(1).tolist() == [32, 7, 2]
    # Mask rows are prefixes: True then False, never a gap.
    assert torch.equal(M, lengths_to_mask(torch.tensor([32, 7, 2]), 32))


def test_layer_norm_output():
    adapter = SpeechAdapter(input_dim=24, output_dim=32, bottleneck_dim=16)
    E, _ = adapter(torch.randn(2, 40, 24), torch.tensor([40, 40]))
    assert torch.allclose(E.mean(-1), torch.zeros(2, E.shape[1]), atol=1e-5)


def test_bottleneck_has_no_bias_and_parameter_count_matches_blsp_emo():
    adapter = SpeechAdapter(input_dim=1280, output_dim=4096)
    assert adapter.fc1.bias is None and adapter.fc2.bias is None
    n = sum(p.numel() for p in adapter.parameters())
    assert abs(n - 89.4e6) / 89.4e6 < 0.01  # method.md 1.3: about 89.4 M
    fused = SpeechAdapter(input_dim=1280, output_dim=4096, emotion_dim=1024)
    assert fused.convs[0].in_channels == 2304
    assert abs(sum(p.numel() for p in fused.parameters()) - 205e6) / 205e6 < 0.02  # method.md 3.3: about 205 M


def test_emotion_embedding_is_broadcast_and_changes_the_output():
    adapter = SpeechAdapter(input_dim=24, output_dim=32, emotion_dim=8, bottleneck_dim=16)
    x, lengths = torch.randn(1, 40, 24), torch.tensor([40])
    a, _ = adapter(x, lengths, torch.randn(1, 8))
    b, _ = adapter(x, lengths, torch.randn(1, 8))
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="emotion"):
        adapter(x, lengths)


def test_expand_from_speech_only_adapter_is_function_preserving():
    torch.manual_seed(0)
    speech_only = SpeechAdapter(input_dim=24, output_dim=32, bottleneck_dim=16)
    fused = SpeechAdapter(input_dim=24, output_dim=32, emotion_dim=8, bottleneck_dim=16)
    copied = fused.expand_from(speech_only.state_dict())
    assert "convs.0.weight" in copied and len(copied) == len(speech_only.state_dict())
    x, lengths = torch.randn(2, 40, 24), torch.tensor([40, 20])
    ref, _ = speech_only(x, lengths)
    out, _ = fused(x, lengths, torch.randn(2, 8))
    assert torch.allclose(out, ref, atol=1e-6)
