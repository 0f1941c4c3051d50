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
