"""Frozen Whisper encoder states, trimmed to each utterance's real length.

HF's ``WhisperEncoder`` accepts exactly 30 s of log-mel input (3000 frames), so
every utterance is padded to 30 s by the feature extractor; its frame-level
attention mask gives the real mel length ``L_mel`` and the encoder output (two
convolutions, the second with stride 2) is trimmed to
``L_enc = floor((L_mel - 1) / 2) + 1`` frames at 50 Hz (docs/method.md#audio-front-end). Longer
utterances are truncated to 30 s (the caller counts them).

``window_seconds`` shortens that window (a CPU option of the mini recipe, whose utterances last at
most 5.3 s): the encoder keeps only the first ``50 * window_seconds`` positions of its sinusoidal
table and reads ``window_seconds`` of padded log-mel instead of 30 s: on Whisper tiny (CPU) 4x
faster at 10 s, 5.7x at 8 s (the mini setting), 8x at 6 s. The states are not those of the 30 s
window (Whisper attends to its padding): on mini utterances their mean cosine similarity to the
30 s states is 0.988 per frame at 10 s, 0.984 at 8 s, 0.980 at 6 s. Every reader of a feature
cache must use the cache's window, so stage 2 records it in ``features.json`` and stage 4 in the
trained model's ``final/`` (``speech_features``).
"""
import torch

MAX_SECONDS = 30.0
POSITIONS_PER_SECOND = 50  # Whisper encoder frames per second: 100 log-mel frames, stride-2 convolution


def shorten_window(encoder, window_seconds):
    """Make ``encoder`` (HF ``WhisperEncoder``) read ``window_seconds`` of log-mel instead of its full window.

    HF's encoder checks its input against ``config.max_source_positions`` and adds the whole
    position table, so both are cut to the first ``50 * window_seconds`` positions (the table is the
    fixed sinusoid, so its first rows are exactly what those positions get in the full window).
    Returns the encoder (changed in place; its config is copied, not shared with other models).
    """
    import copy

    positions = round(float(window_seconds) * POSITIONS_PER_SECOND)
    full = encoder.embed_positions.num_embeddings
    if positions <= 0 or positions > full:
        raise ValueError(f"whisper window of {window_seconds} s must be > 0 and at most the encoder's "
                         f"{full / POSITIONS_PER_SECOND:g} s")
    if positions == full:
        return encoder
    table = encoder.embed_positions.weight.data[:positions].clone()
    encoder.embed_positions = torch.nn.Embedding(positions, table.shape[1], device=table.device, dtype=table.dtype)
    encoder.embed_positions.weight.data.copy_(table)
    encoder.embed_positions.requires_grad_(False)
    encoder.config = copy.deepcopy(encoder.config)
    encoder.config.max_source_positions = positions
    encoder.max_source_positions = positions
    return encoder


def encoder_length(mel_frames):
    """Whisper encoder frames for ``mel_frames`` real log-mel frames (int or LongTensor)."""
    return (mel_frames - 1) // 2 + 1


class WhisperStateExtractor:
    """``extractor(list of 16 kHz float arrays) -> list of fp16 [L_enc, D] tensors`` (CPU).

    ``encoder`` is an HF ``WhisperEncoder`` (or a model with ``get_encoder()``),
    ``feature_extractor`` a ``WhisperFeatureExtractor``; see :meth:`from_pretrained`.
    """

    def __init__(self, encoder, feature_extractor, device="cpu", dtype=torch.float32, window_seconds=None):
        if hasattr(encoder, "get_encoder"):
            encoder = encoder.get_encoder()
        if window_seconds is not None:
            encoder = shorten_window(encoder, window_seconds)
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
        self.window_seconds = self.max_samples / self.sample_rate

    @classmethod
    def from_pretrained(cls, name_or_path, device="cpu", dtype=torch.float32, window_seconds=None):
        """A registry name (``whisper-tiny.en``), a local HF folder, or a hub name (user side only)."""
        from rellm.pretrained import load_whisper_encoder

        encoder, feature_extractor = load_whisper_encoder(name_or_path, dtype=dtype)
        return cls(encoder, feature_extractor, device=device, dtype=dtype, window_seconds=window_seconds)

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
