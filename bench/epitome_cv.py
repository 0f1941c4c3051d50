"""Compare EPITOME classifier options without touching the test split: repeated held-out draws.

The shipped split's dev part is ~150 pairs, too few to rank options that differ by a point of
accuracy. This script takes the non-test part (train + dev of the fixed split), draws it
``--draws`` times into train / dev / held-out (70 / 6 / 24 %, stratified, grouped by pair, one
seed per draw), trains one classifier per draw with the config's options plus the overrides,
and prints one JSON line per draw with its held-out metrics, then a ``summary`` line with the
means. Run a baseline and a variant with the same ``--draws`` and compare them draw by draw
(``epitome_cv_compare.py``); ``--variant`` runs several in one process, sharing the frozen encoder
states. Nothing is cached or written.

    tools/venv/bin/python bench/epitome_cv.py IP                           # the shipped IP options
    tools/venv/bin/python bench/epitome_cv.py IP --response_max_len=64     # a variant
    tools/venv/bin/python bench/epitome_cv.py IP --average_best=1 --draws 101,102,103
    tools/venv/bin/python bench/epitome_cv.py IP --variant "" --variant "select_on=accuracy" --device=cuda

About 4-5 min of one CPU core per draw for IP (4 trained blocks); ~12 s on an H200 (--device=cuda).
"""
import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rellm.scoring.epitome.batching import encode_split, predict
from rellm.scoring.epitome.data import find_data_dir, load_pairs, stratified_split
from rellm.scoring.epitome.encoders import EncoderStates, build_model
from rellm.scoring.epitome.options import response_max_len, train_options, trainable_layers, training_device
from rellm.scoring.epitome.training_loop import evaluate, train_classifier
from rellm.utils.config import load_config, split_overrides

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "rellm" / "scoring" / "epitome" / "epitome.yaml"
DRAW_FRACTIONS = (0.70, 0.06, 0.24)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mechanism", choices=["ER", "IP", "EX"])
    ap.add_argument("--config", default=str(DEFAULT_CONFIG))
    ap.add_argument("--draws", default="101,102,103", help="comma-separated seeds, one draw each")
    ap.add_argument("--member", type=int, default=0,
                    help="K > 0: train with seed draw + 1000 K instead of the draw's seed (another ensemble member)")
    ap.add_argument("--variant", action="append", default=None, metavar="'KEY=VALUE ...'",
                    help="overrides of one variant, compared on the same draws in this process (repeatable); "
                         "the --key=value options apply to every variant")
    ap.add_argument("--dump", default=None, metavar="DIR",
                    help="also save each draw's held-out level probabilities and true levels to "
                         "DIR/<mech>_draw<seed>_member<K>.npz (to study ensembles and decision rules)")
    args, rest = ap.parse_known_args()
    shared = split_overrides(rest)
    variants = args.variant or [""]
    conf = load_config(Path(args.config), shared)
    torch.set_num_threads(conf["num_threads"])
    data_dir = find_data_dir(conf.get("data_dir"))
    if data_dir is None:
        sys.exit("no EPITOME CSVs found; run `python -m rellm.bin.epitome fetch` first")
    pairs = load_pairs(args.mechanism, data_dir)
    split = stratified_split(pairs, conf["split_fractions"], conf["split_seed"])
    pool = pairs.subset(split["train"] + split["dev"])  # the test part is never read
    model, tokenizer = build_model(conf["encoder"], train_options(conf, args.mechanism)["dropout"])
    model.to(training_device(conf))
    initial = copy.deepcopy(model.trainable_state_dict())
    states = {}  # frozen encoder states, shared by the variants that can share them
    for variant in variants:
        conf = load_config(Path(args.config), {**shared, **split_overrides(["--" + kv for kv in variant.split()])})
        hp = {**conf, **train_options(conf, args.mechanism)}
        response_len = response_max_len(hp)
        model.load_state_dict(initial, strict=False)
        start = model.set_responder_trainable_layers(trainable_layers(hp["responder_trainable_layers"]))
        if ("seeker", conf["max_len"]) not in states:
            states["seeker", conf["max_len"]] = EncoderStates()
            states["seeker", conf["max_len"]].add(model.seeker_encoder, tokenizer, pool.seeker, conf["max_len"],
                                                  conf["eval_batch_size"], False)
        seekers = states["seeker", conf["max_len"]]
        responses = None
        if start > 0:
            if ("responder", start, response_len) not in states:
                states["responder", start, response_len] = EncoderStates(layer=start)
                states["responder", start, response_len].add(model.responder_encoder, tokenizer, pool.response,
                                                             response_len, conf["eval_batch_size"], False)
            responses = states["responder", start, response_len]
        rows = []
        for seed in (int(s) for s in args.draws.split(",")):
            cpu0, t0 = time.process_time(), time.time()
            train_seed = seed + 1000 * args.member
            model.load_state_dict(initial, strict=False)
            model.reset_heads(train_seed, hp["dropout"])
            draw = stratified_split(pool, DRAW_FRACTIONS, seed)
            parts = {name: encode_split(pool.subset(ids), tokenizer, response_len)[0]
                     for name, ids in draw.items()}
            _, dev = train_classifier(model, parts["train"], parts["dev"], seekers, tokenizer,
                                      {**hp, "seed": train_seed}, responses, progress=False)
            held_out = evaluate(model, parts["test"], seekers, tokenizer, conf["eval_batch_size"], responses)
            if args.dump:
                _, probs, _ = predict(model, parts["test"], seekers, tokenizer.pad_token_id,
                                      conf["eval_batch_size"], responses)
                Path(args.dump).mkdir(parents=True, exist_ok=True)
                np.savez(Path(args.dump) / f"{args.mechanism}_draw{seed}_member{args.member}.npz",
                         probs=probs, levels=parts["test"].levels)
            row = {"what": "draw", "mechanism": args.mechanism, "variant": variant, "seed": seed,
                   "n_held_out": len(parts["test"]),
                   **{m: round(held_out[m], 4) for m in ("accuracy", "macro_f1", "iou_f1")},
                   "dev_accuracy": round(dev["accuracy"], 4), "cpu_s": round(time.process_time() - cpu0),
                   "wall_s": round(time.time() - t0)}
            rows.append(row)
            print(json.dumps(row), flush=True)
        summary = {m: round(float(np.mean([r[m] for r in rows])), 4) for m in ("accuracy", "macro_f1", "iou_f1")}
        print(json.dumps({"what": "summary", "mechanism": args.mechanism, "variant": variant, "draws": len(rows),
                          **summary, "options": train_options(conf, args.mechanism)}, default=str), flush=True)


if __name__ == "__main__":
    main()
