import math

import torch

from rellm.training.losses import distillation_kl, response_ce


def test_kl_matches_the_definition_without_tau_squared():
    torch.manual_seed(0)
    s, t = torch.randn(5, 11), torch.randn(5, 11)
    tau = 2.0
    p_t = torch.softmax(t / tau, -1)
    manual = (p_t * (torch.log_softmax(t / tau, -1) - torch.log_softmax(s / tau, -1))).sum(-1).mean()
    assert torch.allclose(distillation_kl(s, t, tau), manual, atol=1e-6)
    assert distillation_kl(t, t, tau).abs().item() < 1e-6


def test_kl_is_a_per_token_mean():
    s, t = torch.randn(3, 7), torch.randn(3, 7)
    twice = distillation_kl(torch.cat([s, s]), torch.cat([t, t]))
    assert torch.allclose(twice, distillation_kl(s, t), atol=1e-6)


def test_response_ce_is_token_mean():
    logits = torch.zeros(4, 10)
    assert math.isclose(response_ce(logits, torch.tensor([1, 2, 3, 4])).item(), math.log(10), rel_tol=1e-6)


def test_kl_on_a_hand_computed_case():
    """Teacher logits [ln 3, 0] and [0, 0], student [0, 0] twice, tau = 2 (docs/method.md#losses).

    Row 1: p_t = softmax([ln 3 / 2, 0]) = [sqrt3, 1] / (1 + sqrt3), p_s = [1/2, 1/2],
    KL(p_t || p_s) = sum p_t log(2 p_t). Row 2: identical distributions, KL 0. Per-token mean, no tau^2.
    """
    s3 = math.sqrt(3)
    p = [s3 / (1 + s3), 1 / (1 + s3)]
    row1 = sum(pi * math.log(2 * pi) for pi in p)
    assert math.isclose(row1, 0.036341, rel_tol=1e-4)
    teacher = torch.tensor([[math.log(3), 0.0], [0.0, 0.0]])
    student = torch.zeros(2, 2)
    value = distillation_kl(student, teacher, temperature=2.0).item()
    assert math.isclose(value, row1 / 2, rel_tol=1e-5)  # x 4 (tau^2) or the sum over tokens would fail here
    # the direction is KL(teacher || student), not the reverse
    reverse = sum(0.5 * math.log(0.5 / pi) for pi in p) / 2
    assert not math.isclose(value, reverse, rel_tol=1e-3)
