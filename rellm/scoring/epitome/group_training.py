"""Training a group of mechanisms in one process, sharing the frozen encoder states between them.

Each classifier draws its heads from its own seed, so the grouping does not change the models.
"""
import copy
import json
import logging
import time

import torch
from safetensors.torch import save_file

from rellm.scoring.epitome.batching import encode_split
from rellm.scoring.epitome.data import level_counts, load_pairs, stratified_split
from rellm.scoring.epitome.encoders import EncoderStates, build_model
from rellm.scoring.epitome.model_cache import MODEL_FILE
from rellm.scoring.epitome.options import response_max_len, train_options, trainable_layers, training_device
from rellm.scoring.epitome.training_loop import evaluate, train_classifier
from rellm.utils.io import atomic_path, atomic_write_json
from rellm.utils.stage import DoneMarker

logger = logging.getLogger(__name__)


def train_group(conf, data_dir, root, mechanisms, marker_options, progress, encoders):
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
        start = model.set_responder_trainable_layers(trainable_layers(hp["responder_trainable_layers"]))
        key = (start, response_max_len(hp))
        if start > 0 and key not in response_states:
            response_states[key] = EncoderStates(layer=start)
            response_states[key].add(model.responder_encoder, tokenizer, responses, key[1],
                                     conf["eval_batch_size"], progress, desc="frozen responder layers")
        metrics = train_one(model, tokenizer, all_pairs[mech], seeker_states, response_states.get(key), hp,
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


def train_one(model, tokenizer, pairs, seeker_states, response_states, conf, out_dir, progress):
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
