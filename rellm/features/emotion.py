"""Frozen emotion encoder inference for stage 2: pooled embeddings and A/V/D predictions.

The encoder (:class:`rellm.models.emotion_encoder.EmotionEncoder`) runs on a
padded batch of raw 16 kHz waveforms; padding is masked, so a batch gives the
same embedding as one utterance at a time (audeering's usage).
"""
import numpy as np
import torch

from rellm.models.emotion_encoder import load_emotion_encoder


class EmotionEmbedder:
    """``embedder(list of 16 kHz float arrays) -> (embeddings [B, E], avd_pred [B, 3] (a, v, d))`` as numpy."""

    def __init__(self, model, device="cpu", max_seconds=30.0, sample_rate=16000):
        self.model = model.to(device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.device = torch.device(device)
        self.dtype = next(model.parameters()).dtype
        self.max_samples = int(max_seconds * sample_rate) if max_seconds else None
        self.dim = model.config.hidden_size

    @classmethod
    def from_folder(cls, folder, device="cpu", max_seconds=30.0, dtype=torch.float32):
        return cls(load_emotion_encoder(folder, device=device, dtype=dtype), device=device, max_seconds=max_seconds)

    @torch.inference_mode()
    def __call__(self, waveforms):
        clips = [w[: self.max_samples] if self.max_samples else w for w in waveforms]
        lengths = torch.tensor([len(c) for c in clips], dtype=torch.long)
        batch = torch.zeros(len(clips), int(lengths.max()), dtype=torch.float32)
        for i, c in enumerate(clips):
            batch[i, : len(c)] = torch.from_numpy(np.asarray(c, dtype=np.float32))
        out = self.model(batch.to(self.device, self.dtype), lengths.to(self.device))
        return out["embedding"].float().cpu().numpy(), out["avd"].float().cpu().numpy()
