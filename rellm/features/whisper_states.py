"""Frozen Whisper encoder states, trimmed to each utterance's real length.

HF's ``WhisperEncoder`` accepts exactly 30 s of log-mel input (3000 frames), so
every utterance is padded to 30 s by the feature extractor; its frame-level
attention mask gives the real mel length ``L_mel`` and the encoder output (two
convolutions, the second with stride 2) is trimmed to
``L_enc = floor((L_mel - 1) / 2) + 1`` frames at 50 Hz (docs/method.md#audio-front-end). Longer
utterances are truncated to 30 s (the caller counts them).
"""
import torch

MAX_SECONDS = 30.0


def encoder_length(mel_frames):
    """Whisper encoder frames for ``mel_frames`` real log-mel frames (int or LongTensor)."""
    return (mel_frames - 1) // 2 + 1


class WhisperStateExtractor:
    """``extractor(list of 16 kHz float arrays) -> list of fp16 [L_enc, D] tensors`` (CPU).

    ``encoder`` is an HF ``WhisperEncoder`` (or a model with ``get_encoder()``),
    ``feature_extractor`` a ``WhisperFeatureExtractor``; see :meth:`from_pretrained`.
    """

    def __init__(self, encoder, feature_extractor, device="cpu", dtype=torch.float32):
        if hasattr(encoder, "get_encoder"):
            encoder = encoder.get_encoder()
        mel_bins = getattr(encoder.config, "num_mel_bins", None)
        if mel_bins is not None and mel_bins != feature_extractor.feature_size:
            raise ValueError(f"the Whisper encoder takes {mel_bins} mel bins but its feature extractor makes "
                             f"{feature_extractor.feature_size}; use the feature extractor saved with the model")
        self.encoder = encoder.to(device=device, dtype=dtype).eval()
        for p in self.encoder.parameters():
            p.requires_grad_(False)
        self.feature_extractor = feature_extractor
        self.device, self.dtype = torch.device(device), dtype
        self.dim = encoder.config.d_model
        self.sample_rate = feature_extractor.sampling_rate
        # the encoder's window: 30 s for every released Whisper; a small test model may have fewer positions
        positions = getattr(encoder.config, "max_source_positions", None)
        window = 2 * positions * feature_extractor.hop_length if positions else int(MAX_SECONDS * self.sample_rate)
        self.max_samples = min(int(MAX_SECONDS * self.sample_rate), int(window))

    @classmethod
    def from_pretrained(cls, name_or_path, device="cpu", dtype=torch.float32):
        """A registry name (``whisper-tiny.en``), a local HF folder, or a hub name (user side only)."""
        from rellm.pretrained import load_whisper_encoder

        encoder, feature_extractor = load_whisper_encoder(name_or_path, dtype=dtype)
        return cls(encoder, feature_extractor, device=device, dtype=dtype)

    @torch.inference_mode()
    def __call__(self, waveforms):
        feats = self.feature_extractor(
            [w[: self.max_samples] for w in waveforms], sampling_rate=self.sample_rate, padding="max_length",
            max_length=self.max_samples, return_attention_mask=True, return_tensors="pt",
        )
        mel = feats["input_features"].to(device=self.device, dtype=self.dtype)
        lengths = encoder_length(feats["attention_mask"].sum(-1))
        states = self.encoder(mel).last_hidden_state
        return [states[i, : int(n)].to("cpu", torch.float16).contiguous() for i, n in enumerate(lengths)]
