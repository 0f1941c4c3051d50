"""Modality adapter: Whisper encoder states -> LLM input embeddings (BLSP-Emo "Subsampler").

Three Conv1d(kernel 5, stride 2, padding 2) + GLU layers reduce the 50 Hz encoder
frames 8x in time (160 ms per LLM token), a residual bottleneck (d -> 512 -> d,
no bias, GELU) and a LayerNorm follow; the output width is the LLM hidden size
(docs/method.md#modality-adapter). With ``emotion_dim > 0`` this is RE-LLM's fusion adapter: the
utterance-level emotion embedding is broadcast over time and concatenated to every
speech frame before the first convolution (docs/method.md#fusion-adapter). BLSP-Emo is the same
class with ``emotion_dim=0``; the two systems differ by config only.
"""
import torch
import torch.nn.functional as F
from torch import nn


def conv_output_lengths(lengths, num_layers=3):
    """Lengths after ``num_layers`` stride-2 convs (k5, p2): ``L <- floor((L - 1) / 2 + 1)`` each time."""
    lengths = torch.as_tensor(lengths)
    for _ in range(num_layers):
        lengths = torch.div(lengths - 1, 2, rounding_mode="floor") + 1
    return lengths


def lengths_to_mask(lengths, max_len=None):
    """``LongTensor[B]`` -> ``BoolTensor[B, max_len]``, True on the first ``lengths[b]`` positions."""
    max_len = int(lengths.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


class SpeechAdapter(nn.Module):
    """Conv subsampler + residual bottleneck + LayerNorm, optionally fusing an emotion embedding.

    Arguments
    ---------
    input_dim : int
        Width of the speech encoder states (384 for whisper-tiny.en, 1280 for large-v2).
    output_dim : int
        The LLM hidden size.
    emotion_dim : int
        Width of the utterance emotion embedding to concatenate (0: no emotion nuance module).
    bottleneck_dim : int
        Inner width of the residual bottleneck (512 in BLSP-Emo).
    num_conv_layers, kernel_size : int
        The conv stack (3 layers of kernel 5: 8x reduction in time).
    """

    def __init__(self, input_dim, output_dim, emotion_dim=0, bottleneck_dim=512, num_conv_layers=3, kernel_size=5):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd to keep the length formula exact, got {kernel_size}")
        self.input_dim, self.output_dim, self.emotion_dim = int(input_dim), int(output_dim), int(emotion_dim)
        self.num_conv_layers = int(num_conv_layers)
        width = self.input_dim + self.emotion_dim
        channels = [width] * self.num_conv_layers + [self.output_dim]
        self.convs = nn.ModuleList(
            nn.Conv1d(channels[i], 2 * channels[i + 1], kernel_size, stride=2, padding=kernel_size // 2)
            for i in range(self.num_conv_layers)
        )
        self.fc1 = nn.Linear(self.output_dim, bottleneck_dim, bias=False)
        self.fc2 = nn.Linear(bottleneck_dim, self.output_dim, bias=False)
        self.norm = nn.LayerNorm(self.output_dim, eps=1e-5)
        # The bottleneck starts Xavier-uniform as in the released RE-LLM fusion adapter (docs/method.md#fusion-adapter).
        nn.init.xavier_uniform_(self.fc1.weight)
        nn.init.xavier_uniform_(self.fc2.weight)

    def output_lengths(self, lengths):
        return conv_output_lengths(lengths, self.num_conv_layers)

    def forward(self, speech, lengths, emotion_embedding=None):
        """``speech [B, T, D]``, ``lengths [B]``, ``emotion_embedding [B, E]`` -> ``(E [B, N, H], M bool [B, N])``.

        Padded frames are not zeroed (as in the reference); the output mask comes
        from the conv length formula only, and positions outside it must be ignored.
        """
        if speech.shape[-1] != self.input_dim:
            raise ValueError(f"adapter expects speech states of width {self.input_dim}, got {speech.shape[-1]}")
        if self.emotion_dim:
            if emotion_embedding is None:
                raise ValueError("this adapter fuses an emotion embedding (emotion_dim > 0) but none was given")
            if emotion_embedding.shape[-1] != self.emotion_dim:
                raise ValueError(f"adapter expects emotion embeddings of width {self.emotion_dim}, "
                                 f"got {emotion_embedding.shape[-1]}")
            frames = emotion_embedding.to(speech.dtype)[:, None, :].expand(-1, speech.shape[1], -1)
            speech = torch.cat([speech, frames], dim=-1)
        x = speech.transpose(1, 2)  # [B, C, T] for Conv1d
        for conv in self.convs:
            x = F.glu(conv(x), dim=1)
        x = x.transpose(1, 2)
        x = x + self.fc2(F.gelu(self.fc1(x)))
        x = self.norm(x)
        out_lengths = self.output_lengths(lengths.to(x.device))
        return x, lengths_to_mask(out_lengths, x.shape[1])

    @torch.no_grad()
    def expand_from(self, other_state, prefix=""):
        """Warm-start this fusion adapter from a speech-only adapter's state dict: function-preserving, all trainable.

        Each conv is split into blocks: the "old" output rows (the first rows of each GLU
        half) and input columns (the speech channels, or the old channels of the previous
        layer) take the source weights; the old rows' weights reading the new inputs (the
        emotion embedding, the previous layer's new channels) are zero, so the fused model
        starts exactly as the source model; the new rows (the extra GLU channels) keep this
        adapter's own random initialisation. Every parameter then receives a gradient: the
        zero blocks read non-zero inputs, and the random new channels feed them (an all-zero
        embedding, with zero new channels, would leave both dead forever). ``fusion_init:
        expand`` in stage 4; the released RE-LLM trains a fresh adapter instead (``fresh``).
        Returns the names copied.
        """
        own = self.state_dict()
        copied = []
        for name, value in own.items():
            src = other_state.get(prefix + name)
            if src is None:
                continue
            if src.shape == value.shape:
                value.copy_(src)
            elif name.startswith("convs.") and src.dim() in (1, 3) and all(
                    s <= d for s, d in zip(src.shape, value.shape)):
                half_src, half_dst = src.shape[0] // 2, value.shape[0] // 2
                for h in range(2):  # GLU halves: values, then gates
                    dst_rows = value[h * half_dst: h * half_dst + half_src]
                    src_rows = src[h * half_src: (h + 1) * half_src]
                    if src.dim() == 3:
                        dst_rows[:, : src.shape[1]].copy_(src_rows)
                        dst_rows[:, src.shape[1]:].zero_()  # old channels ignore the new inputs (for now)
                    else:
                        dst_rows.copy_(src_rows)
            else:
                raise ValueError(f"cannot initialise adapter.{name} {tuple(value.shape)} from {tuple(src.shape)}")
            copied.append(name)
        return copied
