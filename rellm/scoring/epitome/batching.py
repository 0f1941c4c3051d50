"""Batches of (seeker post, response) pairs: tokenised splits, length-bucketed batches, batched prediction.

Batches are bucketed by response length so little time goes into padding.
"""
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from rellm.scoring.epitome.data import encode_responses_with_rationales


def pad_batch(sequences, pad_id):
    tensors = [torch.as_tensor(s, dtype=torch.long) for s in sequences]
    ids = pad_sequence(tensors, batch_first=True, padding_value=pad_id)
    mask = pad_sequence([torch.ones(len(s), dtype=torch.long) for s in sequences], batch_first=True)
    return ids, mask


@dataclass
class EncodedSplit:
    ids: list
    seekers: list
    responses: list
    response_ids: list
    rationale_labels: list
    levels: np.ndarray

    def __len__(self):
        return len(self.ids)


def encode_split(pairs, tokenizer, max_len):
    response_ids, labels, report = encode_responses_with_rationales(
        tokenizer, pairs.response, pairs.rationales, max_len)
    return EncodedSplit(list(pairs.ids), list(pairs.seeker), list(pairs.response), response_ids, labels,
                        pairs.level.copy()), report


def length_bucketed_batches(lengths, batch_size, rng=None, bucket_factor=20):
    """Index batches of similar response length (less padding); shuffled when ``rng`` is given."""
    order = np.arange(len(lengths))
    if rng is None:
        order = order[np.argsort(np.asarray(lengths)[order], kind="stable")]
        return [order[i:i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    order = rng.permutation(order)
    batches = []
    chunk = batch_size * bucket_factor
    for start in range(0, len(order), chunk):
        part = order[start:start + chunk]
        part = part[np.argsort(np.asarray(lengths)[part], kind="stable")]
        batches += [part[i:i + batch_size].tolist() for i in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


class Batch:
    """Padded tensors of one batch; ``response_hidden`` only when the responder bottom is cached."""

    def __init__(self, indices, data, seeker_states, pad_id, response_states=None, device="cpu"):
        seeker = [seeker_states.get(data.seekers[i]) for i in indices]
        self.seeker = pad_sequence(seeker, batch_first=True).to(device)
        self.seeker_mask = pad_sequence([torch.ones(len(x), dtype=torch.long) for x in seeker],
                                        batch_first=True).to(device)
        self.response_ids, self.response_mask = (
            t.to(device) for t in pad_batch([data.response_ids[i] for i in indices], pad_id))
        self.response_hidden = None
        if response_states is not None:
            self.response_hidden = pad_sequence([response_states.get(data.responses[i]) for i in indices],
                                                batch_first=True).to(device)
        self.rationale = None
        if data.rationale_labels is not None:
            self.rationale = pad_batch([data.rationale_labels[i] for i in indices], 0)[0].to(device)
        self.levels = torch.as_tensor(data.levels[indices], dtype=torch.long, device=device)

    def run(self, model):
        if self.response_hidden is None:
            return model(self.seeker, self.seeker_mask, self.response_ids, self.response_mask)
        return model.forward_from_layer(self.seeker, self.seeker_mask, self.response_hidden, self.response_mask,
                                        model.responder_start_layer)


@torch.no_grad()
def predict(model, data, seeker_states, pad_id, batch_size=64, response_states=None):
    """``(levels ndarray, level probabilities ndarray [N, 3], rationale 0/1 lists)`` in data order."""
    model.eval()
    n = len(data)
    levels = np.zeros(n, dtype=np.int64)
    probs = np.zeros((n, 3), dtype=np.float32)
    rationales = [None] * n
    lengths = [len(x) for x in data.response_ids]
    for indices in length_bucketed_batches(lengths, batch_size):
        level_logits, rationale_logits = Batch(indices, data, seeker_states, pad_id, response_states,
                                               model.device).run(model)
        p = level_logits.float().softmax(-1).cpu()
        tags = rationale_logits.argmax(-1).cpu()
        for k, i in enumerate(indices):
            levels[i] = int(p[k].argmax())
            probs[i] = p[k].numpy()
            rationales[i] = tags[k, : lengths[i]].tolist()
    return levels, probs, rationales
