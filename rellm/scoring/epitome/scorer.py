"""Scoring (seeker post, response) pairs with the cached EPITOME classifiers."""
import copy
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from rellm.scoring.epitome.batching import EncodedSplit, predict
from rellm.scoring.epitome.data import MECHANISMS, tokenize_texts
from rellm.scoring.epitome.encoders import EncoderStates, text_encoder
from rellm.scoring.epitome.model import EmpathyBiEncoder
from rellm.scoring.epitome.model_cache import MODEL_FILE
from rellm.scoring.epitome.options import response_max_len
from rellm.utils.io import read_json


class EpitomeScorer:
    """Load the cached classifiers once and score (seeker post, response) pairs.

    The three classifiers share one frozen seeker encoder (the base model), so a
    post is encoded once for ER, IP and EX.
    """

    def __init__(self, root, mechanisms=MECHANISMS, encoders=None, num_threads=1, batch_size=64):
        root = Path(root)
        torch.set_num_threads(num_threads)
        self.batch_size = batch_size
        configs = {}
        for mech in mechanisms:
            if not (root / mech / ".done.train").is_file():
                raise FileNotFoundError(f"no trained EPITOME {mech} classifier in {root / mech}; "
                                        "run `python -m rellm.bin.epitome train conf/epitome.yaml` first")
            configs[mech] = read_json(root / mech / "config.json")
        for key in ("encoder", "max_len"):  # one seeker encoder and one seeker length serve all three
            values = {c[key] for c in configs.values()}
            if len(values) != 1:
                raise ValueError(f"the classifiers in {root} were trained with different {key} {sorted(values)}; "
                                 "retrain them together with --overwrite=true")
        first = next(iter(configs.values()))
        base, self.tokenizer = text_encoder(first["encoder"], encoders)
        self.max_len = first["max_len"]
        self.response_max_len = {mech: response_max_len(cfg) for mech, cfg in configs.items()}
        self.models = {}
        for mech, cfg in configs.items():
            model = EmpathyBiEncoder(base, copy.deepcopy(base), num_levels=cfg["num_levels"], dropout=cfg["dropout"])
            if not (root / mech / MODEL_FILE).is_file():
                raise FileNotFoundError(
                    f"{root / mech} holds no {MODEL_FILE} (a model.pt from an older rellm is never unpickled); "
                    "retrain it: python -m rellm.bin.epitome train conf/epitome.yaml")
            state = load_file(str(root / mech / MODEL_FILE), device="cpu")
            missing, unexpected = model.load_state_dict(state, strict=False)
            missing = [k for k in missing if not k.startswith("seeker_encoder.")]
            if missing or unexpected:
                raise ValueError(f"{root / mech / MODEL_FILE} does not match the model "
                                 f"(missing {missing[:5]}, unexpected {unexpected[:5]}); retrain with --overwrite=true")
            model.eval()
            self.models[mech] = model
        self.seeker_encoder = base
        self.seeker_states = EncoderStates()

    def score(self, seekers, responses, progress=True):
        """``{mech: {"level": ndarray[N], "probs": ndarray[N, 3]}}`` for the pairs in order."""
        seekers, responses = list(seekers), list(responses)
        if len(seekers) != len(responses):
            raise ValueError(f"{len(seekers)} seeker posts but {len(responses)} responses")
        self.seeker_states.add(self.seeker_encoder, self.tokenizer, seekers, self.max_len, self.batch_size,
                               progress, desc="seeker states")
        data = {}  # response tokens -> the pairs encoded with that truncation
        out = {}
        for mech, model in self.models.items():
            n = self.response_max_len[mech]
            if n not in data:
                data[n] = EncodedSplit(ids=list(range(len(seekers))), seekers=seekers, responses=responses,
                                       response_ids=tokenize_texts(self.tokenizer, responses, n),
                                       rationale_labels=None, levels=np.zeros(len(seekers), dtype=np.int64))
            levels, probs, _ = predict(model, data[n], self.seeker_states, self.tokenizer.pad_token_id,
                                       self.batch_size)
            out[mech] = {"level": levels, "probs": probs}
        return out
