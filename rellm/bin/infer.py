"""Stage 5: empathetic responses and SER answers of one system on one test set.

    python -m rellm.bin.infer conf/infer.yaml --system {text_only,blsp_emo,rellm} \\
        --model_dir exp/<system>/<split>/seed<seed> --manifest data/<split>/<set>.json \\
        --feats_dir dump/<split>/<set> --output_dir <model_dir>/infer/<set> --shard J --num_shards N
    python -m rellm.bin.infer conf/infer.yaml ... --merge true --num_shards N

Writes ``shards/responses.JofN.jsonl`` per job and, on merge, ``responses.jsonl`` (records
``{utt_id, transcript, emotion, response, ser_output, ser_pred}``) plus ``report.json``
(counts, skipped utterances by reason, the SER parse outcome per label).
"""
import logging
from collections import Counter
from pathlib import Path

from rellm.data.emotions import EMOTIONS
from rellm.data.manifest import read_manifest
from rellm.generation import inference as I
from rellm.generation.runtime import build_decoder, load_llm, pick_device, pick_dtype, set_threads
from rellm.generation.teacher import SkipCounter, plan_batches
from rellm.utils.config import ConfigError, load_config, parse_stage_args, run_main
from rellm.utils.io import atomic_write_json, read_jsonl, write_jsonl
from rellm.utils.logging import setup_logging
from rellm.utils.sharding import merge_jsonl_shards, shard_keys, shard_path
from rellm.utils.stage import DoneMarker

logger = logging.getLogger("rellm.bin.infer")
NAME = "responses"


def _check(hp):
    if hp["system"] not in I.SYSTEMS:
        raise ConfigError(f"--system must be one of {', '.join(I.SYSTEMS)}, got {hp['system']!r}")
    if not Path(hp["manifest"]).is_file():
        raise FileNotFoundError(f"manifest {hp['manifest']} does not exist; run stage 1 first")


def _prompts(hp):
    return {
        "response_system_prompt": hp["response_system_prompt"],
        "response_instruction": hp["response_instruction"],
        "response_max_new_tokens": int(hp["response_max_new_tokens"]),
        "ser_system_prompt": hp["ser_system_prompt"],
        "ser_instruction": hp["ser_instruction"],
        "ser_max_new_tokens": int(hp["ser_max_new_tokens"]),
    }


def _options(hp):
    opts = {
        "system": hp["system"],
        "manifest": str(Path(hp["manifest"]).resolve()),
        "num_shards": hp["num_shards"],
        "batch_size": hp["batch_size"],
        "batch_seed": hp["batch_seed"],
        "dtype": str(hp["dtype"]),
        "min_new_tokens": hp["min_new_tokens"],
        **_prompts(hp),
    }
    if hp["system"] == "text_only":
        opts["text_llm"] = str(hp["text_llm"])
    else:
        from rellm.training.experiment_dir import ExperimentDir

        final = ExperimentDir(hp["model_dir"]).final
        opts["model_dir"] = str(Path(hp["model_dir"]).resolve())
        # A retrained model must not be mistaken for the one the outputs came from.
        opts["model_mtime"] = [(p.name, int(p.stat().st_mtime)) for p in sorted(final.glob("*")) if p.is_file()]
        opts["feats_dir"] = str(Path(hp["feats_dir"]).resolve())
    return opts


def select_utterances(manifest, system, features=None):
    """Utterances the system can answer; the others are counted by reason (never silently dropped)."""
    kept, skips = {}, SkipCounter()
    available = set(features.keys()) if features is not None else None
    for utt_id in sorted(manifest):
        entry = manifest[utt_id]
        if system == "text_only" and not (entry.get("transcript") or "").strip():
            skips.add("no_transcript", utt_id)
            continue
        if available is not None and utt_id not in available:
            skips.add("no_features", utt_id)
            continue
        kept[utt_id] = entry
    return kept, skips


def _load_features(hp):
    if hp["system"] == "text_only":
        return None
    from rellm.features.cache import FeatureCache

    if not Path(hp["feats_dir"]).is_dir():
        raise FileNotFoundError(f"feature folder {hp['feats_dir']} does not exist; run stage 2 for this set first")
    return FeatureCache(hp["feats_dir"])


def _build_system(hp, device):
    if hp["system"] == "text_only":
        llm, tokenizer, layout = load_llm(hp["text_llm"], hp["dtype"], device, hp["num_threads"])
        return I.TextOnlySystem(llm, tokenizer, layout, build_decoder(llm, tokenizer, layout, hp))
    from rellm.models.speech_llm import SpeechLLM

    set_threads(hp["num_threads"])
    dtype = pick_dtype(hp["dtype"], device)
    model = SpeechLLM.from_pretrained_dir(hp["model_dir"], device=device, dtype=dtype)
    decoder = build_decoder(model.base_llm, model.tokenizer, model.layout, hp)
    return I.SpeechSystem(hp["system"], model, _load_features(hp), decoder, dtype)


def run_shard(hp, manifest, out):
    shard, num_shards = int(hp["shard"]), int(hp["num_shards"])
    marker = DoneMarker(out / "shards", f"infer.{shard}of{num_shards}")
    options = _options(hp)
    if marker.is_done(options, overwrite=hp["overwrite"]):
        logger.info("shard %d of %d already done with these options; nothing to do", shard, num_shards)
        return
    system = _build_system(hp, pick_device(hp["device"]))
    features = getattr(system, "features", None)
    entries, skips = select_utterances(manifest, hp["system"], features)
    batches = plan_batches({u: system.length(u, e) for u, e in entries.items()}, hp["batch_size"], hp["batch_seed"])
    mine = {k: batches[k] for k in shard_keys(batches, shard, num_shards)}
    logger.info("%s: %d utterances (%d skipped: %s); this shard: %d of %d batches", hp["system"], len(entries),
                sum(skips.counts.values()), dict(skips.counts), len(mine), len(batches))
    records = I.run_inference(system, entries, mine, _prompts(hp), desc=f"{hp['system']} {shard}/{num_shards}")
    write_jsonl(shard_path(out, NAME, shard, num_shards), records)
    marker.mark_done(options, decoder_backend=system.decoder.backend)


def merge(hp, manifest, out):
    num_shards = int(hp["num_shards"])
    marker = DoneMarker(out, "infer_merge")
    options = _options(hp)
    if marker.is_done(options, overwrite=hp["overwrite"]):
        logger.info("already merged with these options: %s", out)
        return
    path, n = merge_jsonl_shards(out, NAME, num_shards)
    records = read_jsonl(path)
    skipped = {u for u in manifest} - {r["utt_id"] for r in records}
    parse = Counter(r["ser_pred"] for r in records)
    by_label = {e: Counter() for e in EMOTIONS}
    for r in records:
        if r["emotion"] in by_label:
            by_label[r["emotion"]][r["ser_pred"]] += 1
    report = {
        "system": hp["system"],
        "manifest": str(hp["manifest"]),
        "manifest_utterances": len(manifest),
        "answered": n,
        "not_answered": len(skipped),
        "not_answered_examples": sorted(skipped)[:5],
        "ser_pred_counts": dict(sorted(parse.items())),
        "ser_unknown": parse.get("unknown", 0),
        "ser_confusion": {e: dict(sorted(c.items())) for e, c in by_label.items()},
        "empty_responses": sum(1 for r in records if not r["response"]),
        "prompts": _prompts(hp),
    }
    if skipped:
        logger.warning("%d utterances of the manifest have no answer (see report.json); e.g. %s", len(skipped),
                       sorted(skipped)[:3])
    atomic_write_json(out / "report.json", report)
    marker.mark_done(options)
    logger.info("%s: %d answers -> %s (SER unknown: %d)", hp["system"], n, path, report["ser_unknown"])


def main(argv=None):
    config, overrides = parse_stage_args(argv, description=__doc__)
    hp = load_config(config, overrides)
    _check(hp)
    out = Path(hp["output_dir"])
    what = "merge" if hp["merge"] else f"infer.{hp['shard']}of{hp['num_shards']}"
    setup_logging(out / "log" / f"{what}.log")
    manifest = read_manifest(hp["manifest"])
    if hp["merge"]:
        merge(hp, manifest, out)
    else:
        run_shard(hp, manifest, out)


def cli():
    run_main(main)


if __name__ == "__main__":
    cli()
