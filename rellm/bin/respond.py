"""Stage 3: expected responses and plain continuations from a frozen text LLM.

    python -m rellm.bin.respond conf/respond.yaml --manifest data/<split>/<set>.json \\
        --output_dir exp/responses/<split>/<set> --shard J --num_shards N
    python -m rellm.bin.respond conf/respond.yaml --manifest ... --output_dir ... --merge true --num_shards N

Writes ``shards/{expected,continuation}.JofN.jsonl`` (raw generations) per job; the merge writes
``raw/<task>.jsonl`` (everything generated), ``<task>.jsonl`` (cleaned, method.md 2.2) and
``report.json`` (skipped and dropped counts by reason, with examples).
"""
import logging
from collections import Counter
from pathlib import Path

from rellm.data.manifest import read_manifest
from rellm.generation import teacher as T
from rellm.generation.cleaning import CleaningReport, tidy_reply
from rellm.generation.runtime import build_decoder, load_llm, options_fingerprint_base, pick_device
from rellm.utils.config import ConfigError, load_config, parse_stage_args, run_main
from rellm.utils.io import atomic_write_json, read_jsonl, write_jsonl
from rellm.utils.logging import setup_logging
from rellm.utils.sharding import merge_jsonl_shards, shard_keys, shard_path
from rellm.utils.stage import DoneMarker

logger = logging.getLogger("rellm.bin.respond")


def _tasks(hp):
    tasks = []
    for name in hp["tasks"]:
        if name not in T.TASKS:
            raise ConfigError(f"unknown task {name!r} in tasks; choose from {', '.join(T.TASKS)}")
        try:
            tasks.append(
                T.TeacherTask(
                    name,
                    hp[f"{name}_system_prompt"],
                    hp[f"{name}_template"],
                    dict(hp.get("emotion_words") or {}),
                    openings={k: list(v) for k, v in (hp.get(f"{name}_openings") or {}).items()},
                    opening_seed=int(hp.get("opening_seed", 0)),
                )
            )
        except ValueError as err:
            raise ConfigError(str(err)) from None
    if not tasks:
        raise ConfigError("tasks is empty; nothing to generate")
    return tasks


def _options(hp, tasks):
    """Everything that changes the generated text (the shard/merge fingerprint)."""
    return {
        **options_fingerprint_base(hp, "teacher_llm"),
        "manifest": str(Path(hp["manifest"]).resolve()),
        "num_shards": hp["num_shards"],
        "batch_size": hp["batch_size"],
        "max_new_tokens": hp["max_new_tokens"],
        "tasks": [(t.name, t.system_prompt, t.template, sorted(t.emotion_words.items())) for t in tasks],
        # only when used, so that configs without openings keep their fingerprint (and finished outputs)
        **({"openings": [(t.name, sorted(t.openings.items()), t.opening_seed) for t in tasks if t.openings]}
           if any(t.openings for t in tasks) else {}),
    }


def run_shard(hp, tasks, manifest, out):
    shard, num_shards = int(hp["shard"]), int(hp["num_shards"])
    marker = DoneMarker(out / "shards", f"respond.{shard}of{num_shards}")
    options = _options(hp, tasks)
    if marker.is_done(options, overwrite=hp["overwrite"]):
        logger.info("shard %d of %d already done with these options; nothing to do", shard, num_shards)
        return
    device = pick_device(hp["device"])
    llm, tokenizer, layout = load_llm(hp["teacher_llm"], hp["dtype"], device, hp["num_threads"])
    decoder = build_decoder(llm, tokenizer, layout, hp)
    for task in tasks:
        utterances, skips = T.select_utterances(manifest, task)
        prompts = T.build_prompts(layout, task, utterances)
        batches = T.plan_batches({u: len(p[0]) for u, p in prompts.items()}, hp["batch_size"], hp["batch_seed"])
        mine = {k: batches[k] for k in shard_keys(batches, shard, num_shards)}
        logger.info(
            "%s: %d utterances (%d skipped: %s), %d batches of %d; this shard: %d batches",
            task.name, len(utterances), sum(skips.counts.values()), dict(skips.counts), len(batches),
            hp["batch_size"], len(mine),
        )
        records = T.run_task(
            llm, tokenizer, decoder, task, prompts, utterances, mine, hp["max_new_tokens"],
            desc=f"{task.name} {shard}/{num_shards}",
        )
        write_jsonl(shard_path(out, task.name, shard, num_shards), records)
    marker.mark_done(options, decoder_backend=decoder.backend)
    logger.info("shard %d of %d done -> %s", shard, num_shards, out / "shards")


def merge(hp, tasks, manifest, out):
    num_shards = int(hp["num_shards"])
    marker = DoneMarker(out, "respond_merge")
    options = {**_options(hp, tasks), "extra_drop_substrings": list(hp["extra_drop_substrings"] or [])}
    if hp.get("tidy_replies"):  # only when used: configs without it keep their fingerprint
        options["tidy_replies"] = True
    if marker.is_done(options, overwrite=hp["overwrite"]):
        logger.info("already merged with these options: %s", out)
        return
    report = {"manifest": str(hp["manifest"]), "teacher_llm": str(hp["teacher_llm"]), "tasks": {}}
    for task in tasks:
        raw, n = merge_jsonl_shards(out, task.name, num_shards, output=out / "raw" / f"{task.name}.jsonl")
        utterances, skips = T.select_utterances(manifest, task)
        if n != len(utterances):
            raise RuntimeError(
                f"{task.name}: the shards hold {n} records but the manifest has {len(utterances)} usable "
                f"utterances; the shards were made from another manifest. Re-run with --overwrite=true"
            )
        cleaning = CleaningReport(extra_substrings=hp["extra_drop_substrings"] or ())
        records = read_jsonl(raw)
        early_stop = sum(1 for r in records if r["early_stop"])  # as generated, before any tidying
        tidied = Counter()
        if hp.get("tidy_replies"):
            for rec in records:
                rec["output"], rec["early_stop"], changed = tidy_reply(rec["output"], rec["early_stop"])
                tidied.update(changed)
        kept = list(cleaning.filter(records))
        write_jsonl(out / f"{task.name}.jsonl", kept)
        summary = cleaning.as_dict()
        report["tasks"][task.name] = {
            "system_prompt": task.system_prompt,
            "template": task.template,
            "manifest_utterances": len(manifest),
            **skips.as_dict(),
            "generated": n,
            "early_stop": early_stop,
            **({"tidied": dict(sorted(tidied.items()))} if hp.get("tidy_replies") else {}),
            "cleaning": summary,
            "written": len(kept),
        }
        logger.info(
            "%s: %d generated, %d kept, dropped %s, skipped %s -> %s",
            task.name, n, len(kept), summary["dropped"], dict(skips.counts), out / f"{task.name}.jsonl",
        )
    atomic_write_json(out / "report.json", report)
    marker.mark_done(options)


def main(argv=None):
    config, overrides = parse_stage_args(argv, description=__doc__)
    hp = load_config(config, overrides)
    out = Path(hp["output_dir"])
    what = "merge" if hp["merge"] else f"respond.{hp['shard']}of{hp['num_shards']}"
    setup_logging(out / "log" / f"{what}.log")
    tasks = _tasks(hp)
    if not Path(hp["manifest"]).is_file():
        raise FileNotFoundError(f"manifest {hp['manifest']} does not exist; run stage 1 first")
    manifest = read_manifest(hp["manifest"])
    if hp["merge"]:
        merge(hp, tasks, manifest, out)
    else:
        run_shard(hp, tasks, manifest, out)


if __name__ == "__main__":
    run_main(main)
