"""The EPITOME bi-encoder with rationale extraction (Sharma et al. 2020; method.md 4.2).

A frozen *seeker* encoder reads the support-seeking post, a trained *responder*
encoder reads the response. One head of scaled dot-product cross-attention lets
each response token look at the seeker tokens (Q = responder, K/V = seeker):
``R' = R + Dropout(Attn(R, S, S))``. The empathy level (0/1/2) is read from the
first token of ``R'`` and a token head tags the rationale (the words that carry
the empathy). The encoders are any Hugging Face ``AutoModel`` (all-MiniLM-L6-v2
by default, RoBERTa-base as in the paper).

Difference from the released code, on purpose: the attention gets the seeker's
padding mask. Upstream pads every post to 64 tokens and lets queries attend to
the pad states; with per-batch padding that would make a pair's score depend on
its batch mates, so pad keys are masked instead.
"""
import torch
from torch import nn
from torch.nn import functional as F


class EmpathyBiEncoder(nn.Module):
    """``forward(seeker_states, seeker_mask, response_ids, response_mask) -> (level_logits, rationale_logits)``.

    ``seeker_states`` are the frozen seeker encoder's last hidden states; use
    ``encode_seeker`` to get them (once per post: the encoder never changes).
    """

    def __init__(self, seeker_encoder, responder_encoder, num_levels=3, dropout=0.1):
        super().__init__()
        hidden = responder_encoder.config.hidden_size
        if seeker_encoder.config.hidden_size != hidden:
            raise ValueError(f"seeker and responder encoders differ in width "
                             f"({seeker_encoder.config.hidden_size} vs {hidden})")
        self.seeker_encoder = seeker_encoder
        self.seeker_encoder.requires_grad_(False)
        self.responder_encoder = responder_encoder
        self.cross_attention = nn.MultiheadAttention(hidden, num_heads=1, batch_first=True)
        self.attention_dropout = nn.Dropout(dropout)
        self.level_head = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, num_levels))
        self.rationale_head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, 2))

    def train(self, mode=True):
        super().train(mode)
        # The seeker encoder is frozen and its states are cached, so it always runs without dropout.
        self.seeker_encoder.eval()
        return self

    @torch.no_grad()
    def encode_seeker(self, input_ids, attention_mask):
        self.seeker_encoder.eval()
        return self.seeker_encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def forward(self, seeker_states, seeker_mask, response_ids, response_mask):
        responder = self.responder_encoder(input_ids=response_ids, attention_mask=response_mask).last_hidden_state
        attended, _ = self.cross_attention(
            responder, seeker_states, seeker_states, key_padding_mask=~seeker_mask.bool(), need_weights=False)
        fused = responder + self.attention_dropout(attended)
        return self.level_head(fused[:, 0]), self.rationale_head(fused)

    def trainable_state_dict(self):
        """Everything but the frozen seeker encoder (it is reloaded from the base model)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("seeker_encoder.")}


def epitome_loss(level_logits, rationale_logits, levels, rationale_labels, response_mask,
                 lambda_level=1.0, lambda_rationale=0.5, level_weight=None):
    """``lambda_EI * CE(level) + lambda_RE * CE(rationale tokens where the response mask is 1)``.

    ``level_weight`` optionally re-weights the level classes (for the rare levels).
    Returns ``(total, level_loss, rationale_loss)``.
    """
    level_loss = F.cross_entropy(level_logits, levels, weight=level_weight)
    active = response_mask.bool()
    rationale_loss = F.cross_entropy(rationale_logits[active], rationale_labels[active])
    return lambda_level * level_loss + lambda_rationale * rationale_loss, level_loss, rationale_loss
