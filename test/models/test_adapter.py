import pytest
import torch

from rellm.models.adapter import SpeechAdapter, conv_output_lengths, lengths_to_mask


@pytest.mark.parametrize("frames, tokens", [(50, 7), (250, 32), (500, 63), (1500, 188), (1, 1), (8, 1), (9, 2)])
def test_output_lengths_follow_the_conv_formula(frames, tokens):
    # docs/method.md#modality-adapter: 1 s -> 7 speech tokens, 5 s -> 32, 10 s -> 63, 30 s -> 188.
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
    assert abs(n - 89.4e6) / 89.4e6 < 0.01  # docs/method.md#modality-adapter: about 89.4 M
    fused = SpeechAdapter(input_dim=1280, output_dim=4096, emotion_dim=1024)
    assert fused.convs[0].in_channels == 2304
    # docs/method.md#fusion-adapter: about 205 M
    assert abs(sum(p.numel() for p in fused.parameters()) - 205e6) / 205e6 < 0.02


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


def _train_and_collect_grads(adapter, steps=4, seed=0):
    """A few AdamW steps on a regression to random targets; ``{name: sum of |grad| over the steps}``."""
    g = torch.Generator().manual_seed(seed)
    x, lengths = torch.randn(3, 40, 24, generator=g), torch.tensor([40, 33, 20])
    emo, target = torch.randn(3, 8, generator=g), torch.randn(3, 5, 32, generator=g)
    opt = torch.optim.AdamW(adapter.parameters(), lr=1e-3)
    acc = {n: torch.zeros_like(p) for n, p in adapter.named_parameters()}
    for _ in range(steps):
        opt.zero_grad()
        E, _ = adapter(x, lengths, emo)
        ((E - target) ** 2).mean().backward()
        for n, p in adapter.named_parameters():
            acc[n] += p.grad.abs()
        opt.step()
    return acc


@pytest.mark.parametrize("fusion_init", ["fresh", "expand"])
def test_every_fusion_adapter_weight_trains(fusion_init):
    # The zero-embedded warm start left the extra GLU channels and the weights reading them at 0
    # forever (0 * sigmoid(0) = 0 feeds zero weights: no gradient either way).
    torch.manual_seed(0)
    speech_only = SpeechAdapter(input_dim=24, output_dim=32, bottleneck_dim=16)
    fused = SpeechAdapter(input_dim=24, output_dim=32, emotion_dim=8, bottleneck_dim=16)
    if fusion_init == "expand":
        fused.expand_from(speech_only.state_dict())
    acc = _train_and_collect_grads(fused)
    for name, grad in acc.items():
        assert bool((grad > 0).all()), f"{name}: {int((grad == 0).sum())} of {grad.numel()} entries never got a gradient"
    # The new GLU channels (rows 24..31 of each half of conv0/conv1) are alive, not stuck at zero.
    for i in (0, 1):
        w = fused.convs[i].weight
        assert float(w.detach()[24:32].abs().min()) > 0 and float(w.detach()[56:64].abs().min()) > 0


def test_expand_breaks_symmetry_but_is_exact_at_the_start():
    torch.manual_seed(1)
    speech_only = SpeechAdapter(input_dim=24, output_dim=32, bottleneck_dim=16)
    fused = SpeechAdapter(input_dim=24, output_dim=32, emotion_dim=8, bottleneck_dim=16)
    fused.expand_from(speech_only.state_dict())
    # new channels carry random (non-zero) values; the old channels read them with zero weights
    x = torch.randn(1, 40, 24)
    h = torch.cat([x, torch.randn(1, 8)[:, None].expand(-1, 40, -1)], -1).transpose(1, 2)
    h = torch.nn.functional.glu(fused.convs[0](h), dim=1)
    assert float(h.detach()[:, 24:].abs().max()) > 0
    assert float(fused.convs[1].weight[:24, 24:].abs().max()) == 0
    assert float(fused.convs[2].weight[:, 24:].abs().max()) == 0
