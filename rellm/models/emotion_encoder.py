"""Dimensional emotion encoder: the architecture of audeering's MSP-Podcast A/D/V model.

``audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim`` is a wav2vec 2.0
Large-Robust backbone (stable layer norm, pruned to 12 layers) whose last-layer
states are mean-pooled to a 1024-d utterance embedding and fed to a regression
head (dropout -> Linear -> tanh -> dropout -> Linear(3)) predicting arousal,
dominance, valence (in that order, roughly 0..1). RE-LLM concatenates that
pooled embedding to the Whisper states (docs/method.md#emotion-encoder, #fusion-adapter).

:class:`EmotionEncoder` keeps that checkpoint's parameter names
(``wav2vec2.*``, ``classifier.dense.*``, ``classifier.out_proj.*``), so a user
points the config at the downloaded folder and :func:`load_emotion_encoder`
loads it strictly. The same class with a small config is what the mini recipe
trains itself (no pretrained SER model is available offline); that one adds an
optional 5-way categorical head (``category_head.*``), absent for audeering.

Input normalisation: audeering's preprocessor normalises every waveform to zero mean and unit
variance (``do_normalize``), so absolute loudness never reaches the model. ``config.normalize_waveform``
(absent = true, as audeering) lets a small encoder keep it, for a corpus whose loudness is part of its
design (the mini corpus's styles are; real recordings' gain says little about the speaker). The mini
recipe keeps audeering's normalisation (``egs/mini/conf/emotion_encoder.yaml`` gives both figures).

Callers always get A/V/D in the toolkit's order ``[arousal, valence, dominance]``
(:meth:`EmotionEncoder.avd_from_logits`); the head's own order comes from
``config.id2label``.
"""
import logging
from pathlib import Path

import torch
from torch import nn
from transformers import Wav2Vec2Config, Wav2Vec2Model, Wav2Vec2PreTrainedModel

from rellm.data.emotions import AVD  # the toolkit's order

logger = logging.getLogger(__name__)

AUDEERING_HEAD_ORDER = ("arousal", "dominance", "valence")  # the checkpoint's id2label order


def normalize_waveform(waveforms, lengths=None, eps=1e-7):
    """Per-utterance zero mean, unit variance over the real samples; padding stays 0.

    What HF's ``Wav2Vec2FeatureExtractor(do_normalize=True)`` does for one
    utterance, done here on a padded batch. ``waveforms`` [B, S], ``lengths`` [B]
    in samples (None = all real).
    """
    batch, samples = waveforms.shape
    if lengths is None:
        lengths = torch.full((batch,), samples, dtype=torch.long, device=waveforms.device)
    mask = torch.arange(samples, device=waveforms.device)[None, :] < lengths[:, None]
    count = mask.sum(1, keepdim=True).clamp(min=1)
    mean = (waveforms * mask).sum(1, keepdim=True) / count
    var = (((waveforms - mean) * mask) ** 2).sum(1, keepdim=True) / count
    return ((waveforms - mean) / torch.sqrt(var + eps)) * mask


class RegressionHead(nn.Module):
    """dropout -> Linear(h, h) -> tanh -> dropout -> Linear(h, 3); names as in the audeering checkpoint."""

    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.final_dropout)
        self.out_proj = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, pooled):
        x = self.dropout(pooled)
        x = torch.tanh(self.dense(x))
        return self.out_proj(self.dropout(x))


class EmotionEncoder(Wav2Vec2PreTrainedModel):
    """wav2vec2 + mean pooling + A/D/V regression head (+ optional category head).

    ``config.num_categories`` (an extra config attribute, 0 or absent for the
    audeering model) adds ``category_head``: dropout -> Linear(h, num_categories)
    on the pooled embedding, used only when the toolkit trains its own encoder.
    """

    def __init__(self, config):
        super().__init__(config)
        self.wav2vec2 = Wav2Vec2Model(config)
        self.classifier = RegressionHead(config)
        self.num_categories = int(getattr(config, "num_categories", 0) or 0)
        if self.num_categories:
            self.category_head = nn.Sequential(nn.Dropout(config.final_dropout),
                                               nn.Linear(config.hidden_size, self.num_categories))
        self.post_init()
        self._avd_index = avd_head_index(config)
        self.normalize_input = bool(getattr(config, "normalize_waveform", True))

    def frame_lengths(self, lengths):
        """Backbone frames that come from real samples, per utterance."""
        return self.wav2vec2._get_feat_extract_output_lengths(lengths).to(torch.long)

    def conv_features(self, waveforms, lengths=None, normalize=None):
        """The convolutional feature encoder's output ``[B, T, C]`` and the real frame counts ``[B]``.

        Split from :meth:`forward` so that a trainer with a frozen feature encoder
        can compute it once per utterance (it costs most of the model on CPU).
        """
        if lengths is None:
            lengths = torch.full((waveforms.shape[0],), waveforms.shape[1], dtype=torch.long,
                                 device=waveforms.device)
        if self.normalize_input if normalize is None else normalize:
            waveforms = normalize_waveform(waveforms, lengths)
        return self.wav2vec2.feature_extractor(waveforms).transpose(1, 2), self.frame_lengths(lengths)

    def forward_conv_features(self, features, frame_lengths):
        """The rest of the model from :meth:`conv_features`' output (same result as :meth:`forward`)."""
        hidden, _ = self.wav2vec2.feature_projection(features)
        mask = torch.arange(hidden.shape[1], device=hidden.device)[None, :] < frame_lengths[:, None]
        # one utterance per row needs no mask (audeering's usage); with padding, mask it out
        attention_mask = None if bool(mask.all()) else mask  # bool: the encoder indexes with ~mask
        hidden = self.wav2vec2.encoder(hidden, attention_mask=attention_mask).last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        embedding = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
        head_logits = self.classifier(embedding)
        out = {"embedding": embedding, "head_logits": head_logits, "avd": self.avd_from_logits(head_logits)}
        if self.num_categories:
            out["category_logits"] = self.category_head(embedding)
        return out

    def forward(self, waveforms, lengths=None, normalize=None):
        """``waveforms`` [B, S] raw 16 kHz audio (zero-padded), ``lengths`` [B] samples.

        Returns a dict: ``embedding`` [B, H] (mean of the last layer over real
        frames), ``head_logits`` [B, 3] in the head's own order, ``avd`` [B, 3]
        in [arousal, valence, dominance] order, and ``category_logits`` [B, C]
        when the model has a category head. ``normalize`` (None: the config's
        ``normalize_waveform``) normalises each waveform first. (wav2vec2's SpecAugment masking is
        not applied: the toolkit only infers with, or trains small encoders
        without, it.)
        """
        features, frame_lengths = self.conv_features(waveforms, lengths, normalize)
        return self.forward_conv_features(features, frame_lengths)

    def avd_from_logits(self, head_logits):
        """Reorder the head's outputs to [arousal, valence, dominance]."""
        return head_logits[..., self._avd_index]


def avd_head_index(config):
    """Indices into the head's outputs giving [arousal, valence, dominance].

    From ``config.id2label`` when it names the three dimensions; a config with
    generic labels (LABEL_0..2) is taken to use the audeering order.
    """
    if config.num_labels != 3:
        raise ValueError(f"an emotion encoder predicts 3 dimensions; its config has num_labels={config.num_labels}")
    names = [str(config.id2label[i]).lower() for i in range(3)]
    if sorted(names) != sorted(AVD):
        logger.warning("emotion encoder config id2label %s does not name arousal/valence/dominance; "
                       "assuming the audeering order %s", names, AUDEERING_HEAD_ORDER)
        names = list(AUDEERING_HEAD_ORDER)
    return [names.index(d) for d in AVD]


def small_emotion_config(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                         conv_dim=32, num_categories=5, final_dropout=0.1, **overrides):
    """A small config of the same family as the audeering model (stable layer norm, layer-norm convs).

    The 7 convolutions keep wav2vec2's kernels and strides (320x, 20 ms frames);
    only widths and depth shrink, so the same code and checkpoint format serve both.
    """
    cfg = {
        "hidden_size": hidden_size, "num_hidden_layers": num_hidden_layers, "num_attention_heads": num_attention_heads,
        "intermediate_size": intermediate_size, "conv_dim": (conv_dim,) * 7, "conv_stride": (5, 2, 2, 2, 2, 2, 2),
        "conv_kernel": (10, 3, 3, 3, 3, 2, 2), "conv_bias": True, "feat_extract_norm": "layer",
        "do_stable_layer_norm": True, "num_conv_pos_embeddings": 32, "num_conv_pos_embedding_groups": 4,
        "mask_time_prob": 0.0, "mask_feature_prob": 0.0, "final_dropout": final_dropout, "hidden_dropout": 0.1,
        "activation_dropout": 0.0, "attention_dropout": 0.0, "feat_proj_dropout": 0.0, "layerdrop": 0.0,
        "num_labels": 3, "id2label": dict(enumerate(AUDEERING_HEAD_ORDER)),
        "label2id": {k: i for i, k in enumerate(AUDEERING_HEAD_ORDER)},
        "num_categories": num_categories, "architectures": ["EmotionModel"],
    }
    cfg.update(overrides)
    return Wav2Vec2Config(**cfg)


# Checkpoints saved before torch's parametrised weight norm name the positional
# convolution's weight-norm factors weight_g / weight_v (audeering's does).
_LEGACY_NAMES = {
    "pos_conv_embed.conv.weight_g": "pos_conv_embed.conv.parametrizations.weight.original0",
    "pos_conv_embed.conv.weight_v": "pos_conv_embed.conv.parametrizations.weight.original1",
}


def rename_legacy_keys(state_dict, model_keys):
    """Map old weight-norm names to the ones this torch uses (either way as needed)."""
    out = {}
    for key, value in state_dict.items():
        for old, new in _LEGACY_NAMES.items():
            if key.endswith(old) and key not in model_keys and key.replace(old, new) in model_keys:
                key = key.replace(old, new)
            elif key.endswith(new) and key not in model_keys and key.replace(new, old) in model_keys:
                key = key.replace(new, old)
        out[key] = value
    return out


def read_state_dict(folder):
    """``model.safetensors`` (preferred) or ``pytorch_model.bin`` of an HF-style folder."""
    folder = Path(folder)
    if (folder / "model.safetensors").is_file():
        from safetensors.torch import load_file

        return load_file(str(folder / "model.safetensors"))
    if (folder / "pytorch_model.bin").is_file():
        return torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
    raise FileNotFoundError(
        f"no model.safetensors or pytorch_model.bin in {folder}; point emotion_encoder at a folder holding "
        "config.json and the weights (e.g. a download of audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim)"
    )


# Keys a checkpoint may carry that this model legitimately lacks: wav2vec2's
# SpecAugment embedding exists only when masking is configured.
_OPTIONAL_CHECKPOINT_KEYS = ("wav2vec2.masked_spec_embed",)


def load_state_dict_strict(model, state_dict):
    """Load with every model parameter required; name what is missing or unexpected."""
    model_keys = set(model.state_dict())
    state_dict = rename_legacy_keys(state_dict, model_keys)
    unexpected = sorted(k for k in state_dict if k not in model_keys and k not in _OPTIONAL_CHECKPOINT_KEYS)
    missing = sorted(k for k in model_keys if k not in state_dict)
    if missing or unexpected:
        raise ValueError(
            f"emotion encoder checkpoint does not match its config: {len(missing)} missing "
            f"(e.g. {missing[:4]}), {len(unexpected)} unexpected (e.g. {unexpected[:4]}). "
            "Check that config.json belongs to these weights."
        )
    model.load_state_dict({k: v for k, v in state_dict.items() if k in model_keys}, strict=True)
    return model


def load_emotion_encoder(folder, device="cpu", dtype=torch.float32):
    """Build :class:`EmotionEncoder` from ``folder/config.json`` and load its weights strictly; frozen, eval."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"emotion encoder folder {folder} has no config.json. For a real corpus download "
            "audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim and set emotion_encoder to that folder; "
            "for the mini recipe run stage 2a (train_emotion_encoder=true) first."
        )
    config = Wav2Vec2Config.from_pretrained(str(folder))
    model = EmotionEncoder(config)
    load_state_dict_strict(model, read_state_dict(folder))
    model.to(device=device, dtype=dtype).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def save_emotion_encoder(model, folder):
    """Save as an HF folder (config.json + model.safetensors), the audeering checkpoint layout."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder), safe_serialization=True)
    return folder
