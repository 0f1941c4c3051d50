"""The text encoders of the bi-encoder: loading the base model, building a fresh classifier, and the
hidden states of the frozen encoders computed once per distinct text.

Speed on CPU: the seeker encoder is frozen, so its states are computed once per distinct post and
shared by the three mechanisms (they label the same pairs). Only the top ``responder_trainable_layers``
responder blocks are trained; the frozen bottom's output is likewise computed once per distinct response.
"""
import copy

import torch
from tqdm import tqdm

from rellm.scoring.epitome.batching import pad_batch
from rellm.scoring.epitome.data import tokenize_texts
from rellm.scoring.epitome.model import EmpathyBiEncoder, bottom_states


def load_text_encoder(name_or_path):
    """``(AutoModel, fast tokenizer)`` through the offline kit (registry name, local folder or hub name)."""
    try:
        from rellm.pretrained import load_text_encoder as kit_loader
    except ImportError as err:  # the kit is part of the package; this only guards a broken install
        raise ImportError(f"rellm.pretrained.load_text_encoder is unavailable ({err}); reinstall rellm") from err
    return kit_loader(name_or_path)


def text_encoder(name_or_path, encoders=None):
    """``encoders`` (an ``(AutoModel, tokenizer)`` pair, e.g. a tiny one in tests) or the loaded ``name_or_path``."""
    return encoders if encoders is not None else load_text_encoder(name_or_path)


def build_model(encoder_name, dropout, encoders=None):
    """A fresh bi-encoder: both encoders start from the same base weights (as upstream)."""
    base, tokenizer = text_encoder(encoder_name, encoders)
    return EmpathyBiEncoder(base, copy.deepcopy(base), dropout=dropout), tokenizer


class EncoderStates:
    """Hidden states of a frozen encoder (or of its frozen bottom), one ``[L, H]`` tensor per distinct text.

    ``layer`` None = the last hidden state (the seeker encoder); ``layer`` k = the
    output of the first k blocks (the frozen bottom of the responder, 0 = embeddings).
    """

    def __init__(self, layer=None):
        self.layer = layer
        self._states = {}

    def __contains__(self, text):
        return text in self._states

    def __len__(self):
        return len(self._states)

    def get(self, text):
        return self._states[text]

    @torch.no_grad()
    def add(self, encoder, tokenizer, texts, max_len, batch_size=64, progress=True, desc="encoder states"):
        todo = sorted({t for t in texts if t not in self._states}, key=len)
        if not todo:
            return
        encoder.eval()
        device = next(encoder.parameters()).device  # the states stay there (small: one [L, H] per text)
        for start in tqdm(range(0, len(todo), batch_size), desc=desc, disable=not progress, leave=False):
            chunk = todo[start:start + batch_size]
            ids = tokenize_texts(tokenizer, chunk, max_len)
            input_ids, mask = (t.to(device) for t in pad_batch(ids, tokenizer.pad_token_id))
            if self.layer is None:
                states = encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state
            else:
                states = bottom_states(encoder, input_ids, mask, self.layer)
            for k, text in enumerate(chunk):
                self._states[text] = states[k, : len(ids[k])].clone()
