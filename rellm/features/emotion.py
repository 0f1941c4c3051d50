"""Frozen emotion encoder inference for stage 2: pooled embeddings and A/V/D predictions.

The encoder (:class:`rellm.models.emotion_encoder.EmotionEncoder`) runs on a
padded batch of raw 16 kHz waveforms; padding is masked, so a batch gives the
same embedding as one utterance at a time (audeering's usage).
"""
import logging
from pathlib import Path

import numpy as np
import torch

from rellm.models.emotion_encoder import load_emotion_encoder

logger = logging.getLogger(__name__)

FROM_RECIPE = "from_recipe"


def resolve_emotion_encoder(emotion_encoder, emotion_encoder_dir=None):
    """The folder to load: the config's ``emotion_encoder`` (a local folder or, on a machine with hub
    access, a hub name), or ``emotion_encoder_dir`` when the config says ``from_recipe`` / is empty
    (the mini recipe's self-trained encoder, stage 2a)."""
    value = str(emotion_encoder or "").strip()
    if value in ("", FROM_RECIPE):
        if not emotion_encoder_dir:
            raise FileNotFoundError(
                "emotion_encoder is 'from_recipe' but no --emotion_encoder_dir was given; run.sh passes "
                "exp/emotion_encoder/<split>, trained by stage 2a (train_emotion_encoder=true)"
            )
        folder = Path(emotion_encoder_dir)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(
                f"no trained emotion encoder in {folder}: run stage 2a first (./run.sh --stage 2 with "
                "train_emotion_encoder=true), or set emotion_encoder in conf/extract.yaml to a model folder"
            )
        return folder
    folder = Path(value).expanduser()
    if folder.is_dir():
        return folder
    if value.startswith(("/", ".", "~")) or value.count("/") != 1:
        raise FileNotFoundError(
            f"emotion_encoder {value!r} is not a folder. Download "
            "audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim (config.json + weights) and point "
            "emotion_encoder at it"
        )
    # "org/name": only where the user's machine can reach the hub; nothing is hard-coded here
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(value, allow_patterns=["config.json", "*.safetensors", "pytorch_model.bin"]))
    except Exception as err:  # offline, unknown repo, no access
        raise FileNotFoundError(
            f"cannot fetch emotion encoder {value!r} from the hub ({type(err).__name__}: {err}); download it "
            "yourself and set emotion_encoder to the local folder"
        ) from err


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
