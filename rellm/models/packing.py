"""Packing ``prompt | speech | tail`` into one LLM input per row, without gaps.

Segments sit back to back with one padding run per row, so position ids are contiguous;
training right-pads, generation left-pads.
"""
from dataclasses import dataclass

import torch


@dataclass
class PackedSequences:
    """A packed LLM input: ``inputs_embeds [B, L, H]`` plus masks and the target bookkeeping."""

    inputs_embeds: torch.Tensor
    attention_mask: torch.Tensor  # bool [B, L]
    position_ids: torch.Tensor  # [B, L]
    lora_mask: torch.Tensor  # bool [B, L], True at speech positions
    predict_index: tuple = None  # (batch idx, position idx) of the positions predicting each target token
    target_ids: torch.Tensor = None  # [num_targets]
    shared_prefix: tuple = ()  # token ids every row starts with (right-padded layout only)

    @property
    def has_padding(self):
        return not bool(self.attention_mask.all())


def segment_batch(seqs, device):
    """Token id lists -> ``(ids [B, max len] right-padded with 0, lengths [B])`` on ``device``."""
    lens = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    ids = torch.zeros(len(seqs), max(int(lens.max()), 1), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return ids.to(device), lens.to(device)


def pack_sequences(embed, pad_id, prompt_ids, prompt_lens, speech=None, tail_ids=None, tail_lens=None,
                   label_start=None, left_pad=False):
    """Pack ``prompt | speech | tail`` per row without gaps.

    ``embed``: the LLM's input embedding; ``pad_id``: the token at padding positions.
    ``prompt_ids [B, P]`` / ``tail_ids [B, S]`` are right-padded token ids with absolute
    lengths ``prompt_lens`` / ``tail_lens``; ``speech = (E, M)`` or None; ``label_start [B]``
    (tail positions before it carry no loss; None: no targets). Returns ``PackedSequences``.
    """
    device = prompt_ids.device
    B = prompt_ids.shape[0]
    zeros = torch.zeros(B, dtype=torch.long, device=device)
    if speech is not None:
        E, M = speech
        N = M.sum(1)
    else:
        E, N = None, zeros
    if tail_ids is None:
        tail_ids, tail_lens = torch.zeros(B, 1, dtype=torch.long, device=device), zeros
    P, S = prompt_lens.to(device), tail_lens.to(device)
    total = P + N + S
    L = int(total.max())
    t = torch.arange(L, device=device)[None, :].expand(B, L)
    offset = (L - total)[:, None] if left_pad else zeros[:, None]
    local = t - offset
    valid = (local >= 0) & (local < total[:, None])
    in_prompt = valid & (local < P[:, None])
    in_speech = valid & (local >= P[:, None]) & (local < (P + N)[:, None])
    in_tail = valid & (local >= (P + N)[:, None])
    p_idx = local.clamp(0, prompt_ids.shape[1] - 1)
    s_idx = (local - (P + N)[:, None]).clamp(0, tail_ids.shape[1] - 1)
    ids = torch.where(in_prompt, prompt_ids.gather(1, p_idx),
                      torch.where(in_tail, tail_ids.gather(1, s_idx), torch.full_like(t, pad_id)))
    embeds = embed(ids)
    if E is not None:
        e_idx = (local - P[:, None]).clamp(0, max(E.shape[1] - 1, 0))
        speech_g = E.to(embeds.dtype).gather(1, e_idx[..., None].expand(-1, -1, E.shape[-1]))
        embeds = torch.where(in_speech[..., None], speech_g, embeds)
    packed = PackedSequences(embeds, valid, local.clamp_min(0), in_speech)
    if not left_pad and B > 0 and int(P.min()) > 0:
        # the longest prefix every row's prompt starts with (all of it when the rows share one prompt;
        # e.g. the system turn's first tokens when SER question turns are mixed with behaviour turns)
        p0 = int(P.min())
        same = (prompt_ids[:, :p0] == prompt_ids[:1, :p0]).all(0)
        common = int(same.long().cumprod(0).sum())
        if common > 0:
            packed.shared_prefix = tuple(prompt_ids[0, :common].tolist())
    if label_start is not None:
        labelled = in_tail & (s_idx >= label_start.to(device)[:, None])
        b_idx, pos = labelled.nonzero(as_tuple=True)
        packed.predict_index = (b_idx, pos - 1)
        packed.target_ids = ids[b_idx, pos]
    return packed
