"""Training, evaluating, caching and loading the three EPITOME classifiers.

One model per mechanism (ER, IP, EX) is trained on the Reddit annotations with
a fixed stratified 75:5:20 split, selected on the dev part, evaluated on the
test part and cached under ``<cache>/epitome/<encoder tag>/<mechanism>/``:

    model.safetensors  the trained weights minus the frozen seeker encoder (reloaded from the base model)
    config.json   encoder name, max_len, response_max_len, dropout: what loading needs
    split.json    the train/dev/test ids and the split seed
    metrics.json  dev and test metrics, training time, data report
    train_log.txt one line per evaluation
    .done.train   options fingerprint (rellm.utils.stage)

    training_time.json (beside the mechanism folders) wall and CPU seconds of the last training
    .lock.train   held while a process trains into this cache (two runs or users sharing $RELLM_CACHE
                  take turns: the second waits, then reuses what the first trained)

A ``model.pt`` from rellm versions before safetensors is never unpickled: that classifier is retrained.

Speed on CPU: the seeker encoder is frozen, so its states are computed once per
distinct post and shared by the three mechanisms (they label the same pairs).
Only the top ``responder_trainable_layers`` responder blocks are trained; the
frozen bottom's output is likewise computed once per distinct response. Batches
are bucketed by response length so little time goes into padding. The mechanisms
train in ``num_jobs`` processes at once (split by estimated cost); each classifier
draws its heads from its own seed, so the grouping does not change the models.
``device: cuda`` trains on a GPU instead (an IP classifier in ~12 s on an H200, against
4-5 min on one CPU core); the device is not part of the cache fingerprint.
"""
import copy
import json
import logging
import math
import multiprocessing
import os
import re
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch.nn.utils.rnn import pad_sequence
from tqdm import tqdm

from rellm.scoring.epitome.data import (
    CSV_FILES,
    MECHANISMS,
    encode_responses_with_rationales,
    level_counts,
    load_pairs,
    sha256_file,
    stratified_split,
    tokenize_texts,
)
from rellm.scoring.epitome.metrics import classifier_metrics
from rellm.scoring.epitome.model import EmpathyBiEncoder, bottom_states, epitome_loss
from rellm.utils.io import atomic_path, atomic_write_json, atomic_write_text, read_json
from rellm.utils.lock import OutputLock
from rellm.utils.stage import DoneMarker

MODEL_FILE = "model.safetensors"

logger = logging.getLogger(__name__)

# Options that change a trained model; they make up the cache fingerprint.
TRAIN_OPTION_KEYS = (
    "encoder", "max_len", "response_max_len", "split_seed", "split_fractions", "seed", "lr", "epochs", "batch_size",
    "warmup_ratio", "weight_decay", "grad_clip", "dropout", "lambda_level", "lambda_rationale",
    "level_weighting", "evals_per_epoch", "select_on", "average_best", "responder_trainable_layers",
)
# Options added after the first release: a config without them trains as it did before.
OPTION_DEFAULTS = {"response_max_len": None, "average_best": 1}


def load_text_encoder(name_or_path):
    """``(AutoModel, fast tokenizer)`` through the offline kit (registry name, local folder or hub name)."""
    try:
        from rellm.pretrained import load_text_encoder as kit_loader
    except ImportError as err:  # the kit is part of the package; this only guards a broken install
        raise ImportError(f"rellm.pretrained.load_text_encoder is unavailable ({err}); reinstall rellm") from err
    return kit_loader(name_or_path)


def encoder_tag(encoder, tag=None):
    """Folder name of an encoder's models in the cache: ``tag`` or a filesystem-safe form of its name."""
    if tag:
        return str(tag)
    name = Path(str(encoder).rstrip("/")).name or str(encoder)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def epitome_cache_dir(cache_root, encoder, tag=None):
    return Path(cache_root) / "epitome" / encoder_tag(encoder, tag)


# ---------------------------------------------------------------- cached encoder states
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


def _strip_special(labels_list, data, special_ids):
    """Rationale tags over the content tokens only ([CLS]/[SEP] never belong to a rationale)."""
    out = []
    for labels, ids in zip(labels_list, data.response_ids):
        out.append([lab for lab, tok in zip(labels, ids) if tok not in special_ids])
    return out


def evaluate(model, data, seeker_states, tokenizer, batch_size=64, response_states=None):
    levels, _, rationales = predict(model, data, seeker_states, tokenizer.pad_token_id, batch_size, response_states)
    special = set(tokenizer.all_special_ids)
    return classifier_metrics(
        data.levels, levels,
        _strip_special(rationales, data, special), _strip_special(data.rationale_labels, data, special))


def level_class_weights(levels, scheme):
    """Cross-entropy class weights: ``none``, ``balanced`` (n / (K n_k)) or ``sqrt_balanced`` (its square root)."""
    if scheme in (None, "none"):
        return None
    counts = np.bincount(levels, minlength=3).astype(float)
    if (counts == 0).any():
        raise ValueError(f"a level has no training example (counts {counts.tolist()}); "
                         "use --level_weighting=none")
    weights = counts.sum() / (len(counts) * counts)
    if scheme == "sqrt_balanced":
        weights = np.sqrt(weights)
    elif scheme != "balanced":
        raise ValueError(f"unknown level_weighting {scheme!r}; use none, balanced or sqrt_balanced")
    return torch.tensor(weights / weights.mean(), dtype=torch.float32)


SELECTION_CRITERIA = ("accuracy", "macro_f1", "iou_f1", "accuracy+macro_f1")


def selection_score(metrics, select_on):
    """Dev score that picks the kept model: one metric, or ``accuracy+macro_f1`` (their sum, both count)."""
    if select_on not in SELECTION_CRITERIA:
        raise ValueError(f"unknown select_on {select_on!r}; use one of {', '.join(SELECTION_CRITERIA)}")
    return sum(metrics[m] for m in select_on.split("+"))


def average_states(states):
    """Element-wise mean of state dicts (integer buffers are taken from the first)."""
    return {k: torch.stack([s[k].float() for s in states]).mean(0).to(v.dtype) if v.is_floating_point() else v
            for k, v in states[0].items()}


def _lr_lambda(warmup, total_steps):
    def factor(step):
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return factor


def train_classifier(model, train, dev, seeker_states, tokenizer, hp, response_states=None, log_file=None,
                     progress=True):
    """Fine-tune ``model`` on ``train``; keep the state with the best dev ``hp['select_on']`` metric.

    ``hp['average_best']`` N > 1 keeps the average of the N best dev evaluations' weights
    instead (ESPnet's checkpoint averaging): one dev split of ~150 pairs picks a single
    evaluation by luck more than merit, and the average of a few good ones varies less.

    ``response_states`` holds the frozen responder bottom's output (layer
    ``model.responder_start_layer``) per response text, or None to run the whole responder.
    Returns ``(history, best_dev_metrics)``; ``model`` holds the selected weights afterwards.
    """
    torch.manual_seed(hp["seed"])
    rng = np.random.default_rng(hp["seed"])
    pad_id = tokenizer.pad_token_id
    lengths = [len(x) for x in train.response_ids]
    steps_per_epoch = math.ceil(len(train) / hp["batch_size"])
    total_steps = steps_per_epoch * hp["epochs"]
    warmup = int(hp["warmup_ratio"] * total_steps)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [{"params": [p for p in params if p.ndim >= 2], "weight_decay": hp["weight_decay"]},
         {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}],
        lr=hp["lr"], eps=1e-8)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(warmup, total_steps))
    weight = level_class_weights(train.levels, hp["level_weighting"])
    if weight is not None:
        weight = weight.to(model.device)
    n_evals = max(1, min(hp["evals_per_epoch"], steps_per_epoch))
    eval_steps = {round(steps_per_epoch * j / n_evals) for j in range(1, n_evals + 1)}
    cpu0 = time.process_time()
    select_on = hp["select_on"]
    selection_score({"accuracy": 0.0, "macro_f1": 0.0, "iou_f1": 0.0}, select_on)  # fail before training
    keep = int(hp.get("average_best") or 1)
    kept = []  # (dev score, evaluation number, weights) of the `keep` best evaluations, best first
    best, history, lines, step = None, [], [], 0
    for epoch in range(1, hp["epochs"] + 1):
        batches = length_bucketed_batches(lengths, hp["batch_size"], rng)
        bar = tqdm(batches, desc=f"epoch {epoch}/{hp['epochs']}", disable=not progress, leave=False)
        running = []
        for k, indices in enumerate(bar, 1):
            model.train()
            batch = Batch(indices, train, seeker_states, pad_id, response_states, model.device)
            level_logits, rationale_logits = batch.run(model)
            loss, _, _ = epitome_loss(level_logits, rationale_logits, batch.levels, batch.rationale,
                                      batch.response_mask, hp["lambda_level"], hp["lambda_rationale"], weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, hp["grad_clip"])
            optimizer.step()
            scheduler.step()
            step += 1
            running.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(running[-20:]):.3f}")
            if k in eval_steps:
                dev_metrics = evaluate(model, dev, seeker_states, tokenizer, hp["eval_batch_size"], response_states)
                record = {"epoch": epoch, "step": step, "train_loss": float(np.mean(running)),
                          "cpu_seconds": round(time.process_time() - cpu0, 1),
                          "dev": {m: dev_metrics[m] for m in ("accuracy", "macro_f1", "iou_f1")}}
                history.append(record)
                running = []
                score = selection_score(dev_metrics, select_on)
                improved = best is None or score > selection_score(best, select_on)
                if improved:
                    best = dev_metrics
                if len(kept) < keep or score > kept[-1][0]:
                    kept.append((score, len(history) - 1, copy.deepcopy(model.trainable_state_dict())))
                    kept.sort(key=lambda item: (-item[0], item[1]))  # ties: the earlier evaluation first
                    del kept[keep:]
                line = (f"epoch {epoch} step {step}/{total_steps} train_loss {record['train_loss']:.4f} "
                        f"dev acc {dev_metrics['accuracy']:.4f} macro_f1 {dev_metrics['macro_f1']:.4f} "
                        f"iou_f1 {dev_metrics['iou_f1']:.4f} cpu {record['cpu_seconds']:.0f}s{' *' if improved else ''}")
                logger.info(line)
                lines.append(line)
                if log_file:
                    atomic_write_text(log_file, "\n".join(lines) + "\n")
    if keep == 1:
        model.load_state_dict(kept[0][2], strict=False)
        return history, best
    model.load_state_dict(average_states([state for _, _, state in kept]), strict=False)
    averaged = evaluate(model, dev, seeker_states, tokenizer, hp["eval_batch_size"], response_states)
    averaged["averaged_evaluations"] = sorted(history[i]["step"] for _, i, _ in kept)
    line = (f"kept the average of the {len(kept)} best evaluations (steps {averaged['averaged_evaluations']}): "
            f"dev acc {averaged['accuracy']:.4f} macro_f1 {averaged['macro_f1']:.4f} iou_f1 {averaged['iou_f1']:.4f}")
    logger.info(line)
    if log_file:
        atomic_write_text(log_file, "\n".join(lines + [line]) + "\n")
    return history, averaged


# ---------------------------------------------------------------- whole pipeline
def train_options(conf, mechanism=None):
    """The options that make a model; with ``mechanism``, a ``{ER: .., IP: .., EX: ..}`` value is resolved."""
    out = {}
    for key in TRAIN_OPTION_KEYS:
        if key not in conf and key not in OPTION_DEFAULTS:
            raise KeyError(f"the EPITOME config lacks '{key}' (see rellm/scoring/epitome/epitome.yaml)")
        value = conf.get(key, OPTION_DEFAULTS.get(key))
        if mechanism is not None and isinstance(value, dict):
            if mechanism not in value:
                raise ValueError(f"{key} is given per mechanism ({', '.join(sorted(value))}) but not for {mechanism}")
            value = value[mechanism]
        out[key] = value
    return out


def build_model(encoder_name, dropout, encoders=None):
    """A fresh bi-encoder: both encoders start from the same base weights (as upstream)."""
    base, tokenizer = encoders if encoders is not None else load_text_encoder(encoder_name)
    return EmpathyBiEncoder(base, copy.deepcopy(base), dropout=dropout), tokenizer


def training_device(conf):
    """``conf['device']`` (cpu, cuda, cuda:1, ...; absent: cpu), checked before any work starts."""
    device = torch.device(conf.get("device") or "cpu")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device} asked for, but torch sees no CUDA GPU; use --device=cpu")
    return device


def _trainable_layers(value):
    return None if value in (None, "all") else int(value)


def response_max_len(options):
    """Tokens kept of a response: ``response_max_len``, or ``max_len`` (the seeker post's) when it is null."""
    return int(options.get("response_max_len") or options["max_len"])


def train_all(conf, data_dir, cache_root, overwrite=False, progress=True, encoders=None):
    """Train (or reuse from the cache) one classifier per mechanism; returns ``{mech: test metrics}``.

    Any training option may be one value or a per-mechanism mapping (``lr: {ER: 1e-4, IP: 5e-5, EX: 1e-4}``);
    a mechanism is retrained only when its own resolved options change. With ``num_jobs`` > 1 (null: as
    many as the CPUs allow at ``num_threads`` each) the mechanisms train in that many processes at once;
    the models are the same as when they train one after the other.
    ``encoders`` = ``(AutoModel, tokenizer)`` to use instead of loading ``conf['encoder']`` (tests pass tiny ones).
    """
    if isinstance(conf["encoder"], dict) or isinstance(conf["max_len"], dict):
        raise TypeError("encoder and max_len are shared by the three classifiers; give one value")
    root = epitome_cache_dir(cache_root, conf["encoder"], conf.get("encoder_tag"))
    training_device(conf)  # a GPU asked for but absent fails here, not in a worker process
    with OutputLock(root, "train", wait=True, what=f"the EPITOME cache {root}"):
        return _train_all_locked(conf, data_dir, root, overwrite, progress, encoders)


def _train_all_locked(conf, data_dir, root, overwrite, progress, encoders):
    todo, marker_options = [], {}
    for mech in conf["mechanisms"]:
        if mech not in MECHANISMS:
            raise ValueError(f"unknown mechanism {mech!r}; expected some of {', '.join(MECHANISMS)}")
        marker_options[mech] = {**train_options(conf, mech), "mechanism": mech,
                                "data_sha256": sha256_file(Path(data_dir) / CSV_FILES[mech])}
        marker = DoneMarker(root / mech, "train", hint="pass --overwrite=true (it retrains into the shared cache)")
        if marker.is_done(marker_options[mech], overwrite) and not (root / mech / MODEL_FILE).is_file():
            logger.warning("EPITOME %s: %s holds no %s (a model.pt from an older rellm is never unpickled); "
                           "retraining it", mech, root / mech, MODEL_FILE)
            todo.append(mech)
        elif marker.is_done(marker_options[mech], overwrite):
            logger.info("EPITOME %s classifier already trained with these options: %s", mech, root / mech)
        else:
            todo.append(mech)
    if not todo:
        return load_metrics(root, conf["mechanisms"])
    t0, cpu0 = time.time(), time.process_time()
    groups = plan_groups({m: training_cost(train_options(conf, m)) for m in todo},
                         parallel_jobs(conf.get("num_jobs"), len(todo), conf["num_threads"]))
    if len(groups) == 1:
        _train_group(conf, data_dir, root, todo, marker_options, progress, encoders)
        cpu = time.process_time() - cpu0
    else:
        logger.info("training %s in %d processes of %d thread(s) each", " | ".join("+".join(g) for g in groups),
                    len(groups), conf["num_threads"])
        log_files = [h.baseFilename for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
        context = multiprocessing.get_context("spawn")  # fork would copy the parent's thread pools and locks
        with ProcessPoolExecutor(len(groups), mp_context=context) as pool:
            futures = [pool.submit(_train_group_in_process, conf, data_dir, root, group, marker_options, encoders,
                                   log_files[0] if log_files else None) for group in groups]
            # a failure is raised after the other groups finish: their classifiers stay trained and cached
            cpu = time.process_time() - cpu0 + sum(f.result() for f in futures)
    summary = {"mechanisms": todo, "groups": groups, "wall_seconds": round(time.time() - t0, 1),
               "cpu_seconds": round(cpu, 1), "num_threads": conf["num_threads"]}
    atomic_write_json(root / "training_time.json", summary)
    logger.info("trained %s in %.1f s wall, %.1f s CPU (the machine may be shared: CPU time is the fairer measure)",
                ", ".join(todo), summary["wall_seconds"], summary["cpu_seconds"])
    return load_metrics(root, conf["mechanisms"])


def parallel_jobs(num_jobs, n_tasks, num_threads):
    """Processes for ``n_tasks`` mechanisms: ``num_jobs``, or (null) the usable CPUs // ``num_threads``."""
    if num_jobs in (None, "auto"):
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        num_jobs = cpus // max(1, int(num_threads))
    return max(1, min(int(num_jobs), n_tasks))


def training_cost(options):
    """Relative cost of training one classifier: epochs x response tokens x trained responder blocks."""
    layers = _trainable_layers(options["responder_trainable_layers"])
    return options["epochs"] * response_max_len(options) * (12 if layers is None else layers)  # all: say 12


def plan_groups(costs, jobs):
    """Split ``{mech: cost}`` into at most ``jobs`` groups of similar total cost (costliest first, to the lightest)."""
    groups, loads = [[] for _ in range(jobs)], [0] * jobs
    for mech in sorted(costs, key=lambda m: -costs[m]):
        k = loads.index(min(loads))
        groups[k].append(mech)
        loads[k] += costs[mech]
    return [group for group in groups if group]


def _train_group_in_process(conf, data_dir, root, mechanisms, marker_options, encoders, log_file):
    """Entry of a worker process: train ``mechanisms`` one after the other; returns the process's CPU seconds."""
    from rellm.utils.logging import setup_logging

    setup_logging(log_file, tag="+".join(mechanisms))
    _train_group(conf, data_dir, root, mechanisms, marker_options, progress=False, encoders=encoders)
    return time.process_time()


def _train_group(conf, data_dir, root, mechanisms, marker_options, progress, encoders):
    """Train ``mechanisms`` in this process, sharing the frozen encoder states between them."""
    torch.set_num_threads(conf["num_threads"])
    t0, cpu0 = time.time(), time.process_time()
    model, tokenizer = build_model(conf["encoder"], train_options(conf, mechanisms[0])["dropout"], encoders)
    model.to(training_device(conf))
    initial_state = copy.deepcopy(model.trainable_state_dict())
    # The three files label the same pairs: frozen states are computed once for all mechanisms. Every
    # configured file is read whichever mechanisms train here, so that every process encodes the same
    # texts in the same batches (the states, hence the models, do not depend on the grouping).
    all_pairs = {m: load_pairs(m, data_dir) for m in conf["mechanisms"]}
    seekers = sorted({t for p in all_pairs.values() for t in p.seeker})
    responses = sorted({t for p in all_pairs.values() for t in p.response})
    seeker_states = EncoderStates()
    seeker_states.add(model.seeker_encoder, tokenizer, seekers, conf["max_len"], conf["eval_batch_size"],
                      progress, desc="seeker states")
    response_states = {}  # (first trained block, response tokens) -> frozen bottom's output per response
    frozen_seconds, frozen_cpu = time.time() - t0, time.process_time() - cpu0
    for mech in mechanisms:
        hp = {**conf, **train_options(conf, mech)}
        t1, cpu1 = time.time(), time.process_time()
        model.load_state_dict(initial_state, strict=False)
        model.reset_heads(hp["seed"], hp["dropout"])
        start = model.set_responder_trainable_layers(_trainable_layers(hp["responder_trainable_layers"]))
        key = (start, response_max_len(hp))
        if start > 0 and key not in response_states:
            response_states[key] = EncoderStates(layer=start)
            response_states[key].add(model.responder_encoder, tokenizer, responses, key[1],
                                     conf["eval_batch_size"], progress, desc="frozen responder layers")
        metrics = _train_one(model, tokenizer, all_pairs[mech], seeker_states, response_states.get(key), hp,
                             root / mech, progress)
        metrics["train_seconds"] = round(time.time() - t1, 1)
        metrics["train_cpu_seconds"] = round(time.process_time() - cpu1, 1)
        metrics["seeker_state_seconds"] = round(frozen_seconds, 1)
        metrics["seeker_state_cpu_seconds"] = round(frozen_cpu, 1)
        metrics["num_threads"] = conf["num_threads"]
        atomic_write_json(root / mech / "metrics.json", metrics)
        DoneMarker(root / mech, "train").mark_done(marker_options[mech])
        logger.info("EPITOME %s: test %s (%.0f s)", mech, json.dumps(
            {k: round(metrics["test"][k], 4) for k in ("accuracy", "macro_f1", "iou_f1")}), metrics["train_seconds"])


def _train_one(model, tokenizer, pairs, seeker_states, response_states, conf, out_dir, progress):
    split = stratified_split(pairs, conf["split_fractions"], conf["split_seed"])
    atomic_write_json(out_dir / "split.json", {"seed": conf["split_seed"], "fractions": conf["split_fractions"],
                                               "grouped_by": "sp_id, rp_id", **split})
    parts, reports = {}, {}
    for name, ids in split.items():
        parts[name], reports[name] = encode_split(pairs.subset(ids), tokenizer, response_max_len(conf))
    logger.info("%s: train/dev/test = %d/%d/%d, rationale spans not found in their response: %d",
                pairs.mechanism, len(parts["train"]), len(parts["dev"]), len(parts["test"]),
                sum(r["spans_not_found"] for r in reports.values()))
    history, best_dev = train_classifier(model, parts["train"], parts["dev"], seeker_states, tokenizer, conf,
                                         response_states, out_dir / "train_log.txt", progress)
    test = evaluate(model, parts["test"], seeker_states, tokenizer, conf["eval_batch_size"], response_states)
    with atomic_path(out_dir / MODEL_FILE) as tmp:  # CPU tensors: loadable without a GPU; safetensors: no pickle
        save_file({k: v.detach().cpu().contiguous() for k, v in model.trainable_state_dict().items()}, str(tmp))
    (out_dir / "model.pt").unlink(missing_ok=True)  # the pickle of older rellm versions
    atomic_write_json(out_dir / "config.json", {
        "mechanism": pairs.mechanism, "encoder": str(conf["encoder"]), "max_len": conf["max_len"],
        "response_max_len": response_max_len(conf), "dropout": conf["dropout"], "num_levels": 3})
    return {
        "mechanism": pairs.mechanism,
        "test": test,
        "dev": best_dev,
        "level_counts": {name: level_counts(p.levels) for name, p in parts.items()},
        "data_report": reports,
        "history": history,
        "options": train_options(conf, pairs.mechanism),
    }


def load_metrics(root, mechanisms=MECHANISMS):
    """``{mech: {"accuracy", "macro_f1", "iou_f1"}}`` from the cached test metrics."""
    out = {}
    for mech in mechanisms:
        path = Path(root) / mech / "metrics.json"
        if not path.is_file():
            raise FileNotFoundError(f"no trained EPITOME {mech} classifier in {Path(root) / mech}; "
                                    "run `python -m rellm.bin.epitome train conf/epitome.yaml` first")
        test = read_json(path)["test"]
        out[mech] = {k: test[k] for k in ("accuracy", "macro_f1", "iou_f1")}
    return out


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
        base, self.tokenizer = encoders if encoders is not None else load_text_encoder(first["encoder"])
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
