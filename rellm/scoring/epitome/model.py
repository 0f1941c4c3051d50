"""The EPITOME bi-encoder with rationale extraction (Sharma et al. 2020; docs/evaluation.md#epitome-classifiers).

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
from transformers.masking_utils import create_bidirectional_mask


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
        self.num_levels, self.dropout = num_levels, dropout
        self._build_heads()
        self.responder_start_layer = 0  # first trained responder block (0: all trained, as upstream)

    def _build_heads(self):
        hidden, dropout = self.responder_encoder.config.hidden_size, self.dropout
        self.cross_attention = nn.MultiheadAttention(hidden, num_heads=1, batch_first=True)
        self.attention_dropout = nn.Dropout(dropout)
        self.level_head = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, self.num_levels))
        self.rationale_head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, 2))

    def reset_heads(self, seed, dropout=None):
        """Fresh cross-attention and heads drawn from ``seed`` (the encoders are untouched).

        Training calls this per mechanism so that a classifier depends on its own seed only, not
        on what the process drew before: the same options give the same model whether the three
        mechanisms train one after the other or in parallel processes.
        """
        if dropout is not None:
            self.dropout = dropout
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self._build_heads()
        self.to(self.device)  # the fresh heads are built on the CPU

    @property
    def device(self):
        """Where the responder encoder (and so the trained part) lives."""
        return next(self.responder_encoder.parameters()).device

    def set_responder_trainable_layers(self, trainable_layers):
        """Train only the top ``trainable_layers`` responder blocks (None: all, embeddings included)."""
        self.responder_start_layer = freeze_bottom_layers(self.responder_encoder, trainable_layers)
        return self.responder_start_layer

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
        return self.fuse_and_classify(seeker_states, seeker_mask, responder, response_mask)

    def forward_from_layer(self, seeker_states, seeker_mask, response_hidden, response_mask, start_layer):
        """Same as ``forward`` from the responder's hidden states after ``start_layer`` layers.

        Training with the bottom layers frozen feeds their (cached) output here and
        runs only the top layers, which is what makes CPU training affordable.
        """
        responder = run_top_layers(self.responder_encoder, response_hidden, response_mask, start_layer)
        return self.fuse_and_classify(seeker_states, seeker_mask, responder, response_mask)

    def fuse_and_classify(self, seeker_states, seeker_mask, responder, response_mask):
        attended, _ = self.cross_attention(
            responder, seeker_states, seeker_states, key_padding_mask=~seeker_mask.bool(), need_weights=False)
        fused = responder + self.attention_dropout(attended)
        return self.level_head(fused[:, 0]), self.rationale_head(fused)

    def trainable_state_dict(self):
        """Everything but the frozen seeker encoder (it is reloaded from the base model)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("seeker_encoder.")}


def encoder_layers(encoder):
    """The transformer blocks of a BERT/RoBERTa-like ``AutoModel`` (``encoder.encoder.layer``)."""
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    if layers is None:
        raise ValueError(f"{type(encoder).__name__} has no encoder.layer list; freezing responder layers needs a "
                         "BERT/RoBERTa-like encoder: set responder_trainable_layers to all")
    return layers


def run_top_layers(encoder, hidden, attention_mask, start_layer, stop_layer=None):
    """Run ``encoder``'s blocks ``start_layer..stop_layer-1`` on ``hidden`` (the output of block ``start_layer - 1``)."""
    mask = create_bidirectional_mask(config=encoder.config, inputs_embeds=hidden, attention_mask=attention_mask)
    for layer in encoder_layers(encoder)[start_layer:stop_layer]:
        hidden = layer(hidden, mask)
        if isinstance(hidden, tuple):  # older transformers return (hidden, ...)
            hidden = hidden[0]
    return hidden


def bottom_states(encoder, input_ids, attention_mask, num_layers):
    """Output of the embeddings and the first ``num_layers`` blocks (what a frozen bottom feeds the top)."""
    hidden = encoder.embeddings(input_ids=input_ids)
    return run_top_layers(encoder, hidden, attention_mask, 0, num_layers)


def freeze_bottom_layers(encoder, trainable_layers):
    """Freeze the embeddings and all but the top ``trainable_layers`` blocks; returns the first trained block.

    ``trainable_layers`` None means all blocks (and the embeddings) are trained, as upstream.
    """
    layers = encoder_layers(encoder) if trainable_layers is not None else None
    if layers is None:
        encoder.requires_grad_(True)
        return 0
    if not 0 <= trainable_layers <= len(layers):
        raise ValueError(f"responder_trainable_layers must be in 0..{len(layers)} (or all), got {trainable_layers}")
    start = len(layers) - trainable_layers
    encoder.requires_grad_(False)
    for layer in layers[start:]:
        layer.requires_grad_(True)
    return start


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
