"""Auxiliary heads on the pooled adapter output (docs/method.md#losses ``input_er``, #auxiliary-heads ``input_er_avd``).

Both read ``p = sum_t M_t E_t / sum_t M_t``, the masked mean of the adapter output
(before the LLM): a bias-free 5-way emotion classifier (CE) and a bias-free
arousal/valence/dominance regressor (MSE, or 1 - CCC as an option). Their losses are in
``rellm.training.losses``.
"""
from torch import nn

from rellm.data.emotions import NUM_EMOTIONS


def masked_mean(x, mask):
    """``x [B, N, H]``, ``mask [B, N]`` -> ``[B, H]``: the mean over the valid positions."""
    mask = mask.to(x.dtype).unsqueeze(-1)
    return (x * mask).sum(1) / mask.sum(1).clamp_min(1.0)


class EmotionClassifierHead(nn.Module):
    """``W_cat p`` with ``W_cat in R^{5 x H}`` and no bias (BLSP-Emo ``hidden2emotion``)."""

    def __init__(self, input_dim, num_classes=NUM_EMOTIONS):
        super().__init__()
        self.proj = nn.Linear(input_dim, num_classes, bias=False)

    def forward(self, pooled):
        return self.proj(pooled)


class AVDRegressionHead(nn.Module):
    """``W_dim p`` with ``W_dim in R^{3 x H}`` and no bias; outputs [arousal, valence, dominance]."""

    def __init__(self, input_dim, num_dims=3):
        super().__init__()
        self.proj = nn.Linear(input_dim, num_dims, bias=False)

    def forward(self, pooled):
        return self.proj(pooled)
