"""``./run.sh --dry_run true``: the settings and per-stage overrides of a dry run, and its data subset.

A dry run checks a paper recipe end to end before any GPU hour is spent: every model is swapped for
its small offline sibling of the same family (``rellm/recipes/dry_run.yaml``), epochs are tiny, all
runs on the CPU, and the outputs go to their own roots (``data_dry/``, ``dump_dry/``, ``exp_dry/``,
``RESULTS_dry_run.md``), so nothing mixes with a real run.

BLSP-Emo: with ``blsp_emo_source=released`` and ``BLSP_EMO`` unset, the dry run trains a tiny BLSP-Emo
instead of importing the 7B checkpoint. With ``BLSP_EMO`` set, it imports it, and the models that
checkpoint fixes are not swapped: its LLM (``llm_name`` of conf/import_blsp_emo.yaml, used as the
teacher, the speech-LLM and the text-only baseline as in the paper) and its Whisper (``whisper`` of
conf/extract.yaml, which the import compares with the checkpoint's own encoder).

:func:`settings` returns the stages.sh flags a dry run sets; stages.sh gets them through
``python -m rellm.recipes.stage_args --dry_run true`` (which also applies the recipe's ``conf/overlay.yaml``).
"""
import json
import shlex
from pathlib import Path

import yaml

from rellm.utils.config import ConfigError, config_value, split_overrides
from rellm.utils.io import atomic_write_json, atomic_write_text

TABLE = Path(__file__).with_name("dry_run.yaml")
EMOTION_ENCODER_CONF = Path(__file__).with_name("dry_run_emotion_encoder.yaml")
# Overrides that name a model the released BLSP-Emo fixes (not swapped when it is imported).
CHECKPOINT_BOUND = {"teacher_llm", "text_llm", "llm_name", "speech_encoder", "whisper"}
SHELL_SETTINGS = ("datadir", "dumpdir", "expdir", "results", "ngpu", "nj", "gen_nj", "infer_nj")


def load_table(path=TABLE):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def _conf_value(conf, key, conf_overrides=None):
    """A top-level plain value of a recipe config (read without building hyperpyyaml objects), the recipe's
    overlay value when it sets one."""
    conf = Path(conf)
    overridden = (conf_overrides or {}).get(conf.name, {})
    if key in overridden:
        return overridden[key]
    if not conf.is_file():
        raise ConfigError(f"{conf} does not exist; run ./run.sh from the recipe folder")
    return config_value(conf, key)


def settings(recipe_dir=".", split="official", blsp_emo_source="released", blsp_emo="", user_args=None,
             table=None, conf_overrides=None):
    """``(flags, notes)``: the stages.sh flags a dry run sets and what it tells the user.

    ``user_args``: ``{flag: value}`` of stages.sh's stage-argument flags (``extract_args``, ...); each comes back
    with the dry run's overrides for it in front, a flag the dry run has none for as it was. ``conf_overrides``:
    the recipe's overlay (``{config file: {key: value}}``), read where the dry run reads a config value."""
    table = table or load_table()
    user_args = dict(user_args or {})
    recipe_dir = Path(recipe_dir)
    imported = blsp_emo_source == "released" and bool(blsp_emo)
    notes = []
    values = {"llm": table["llm"], "whisper": table["whisper"], "epitome_encoder": table["epitome_encoder"],
              "expdir": table["expdir"], "split": split}
    out = {k: str(table[k]) for k in SHELL_SETTINGS}
    out["train_emotion_encoder"] = "true"
    out["emotion_encoder_conf"] = str(EMOTION_ENCODER_CONF)
    if blsp_emo_source == "released" and not imported:
        out["blsp_emo_source"] = "trained"
        notes.append("BLSP_EMO is not set: the dry run trains a tiny BLSP-Emo instead of importing the released "
                     "checkpoint (set BLSP_EMO to check the import too)")
    swaps = {flag: [a.format(**values) for a in args] for flag, args in (table.get("stage_args") or {}).items()}
    if imported:
        swaps = {flag: [a for a in args if a[2:].split("=", 1)[0] not in CHECKPOINT_BOUND]
                 for flag, args in swaps.items()}
        # the Whisper stage 2 extracts with is the one the import checks and RE-LLM records
        whisper = split_overrides(shlex.split(user_args.get("extract_args", ""))).get("whisper") \
            or _conf_value(recipe_dir / "conf" / "extract.yaml", "whisper", conf_overrides)
        swaps["import_args"] = [f"--check_whisper={whisper}", *swaps.get("import_args", [])]
        swaps["train_args"] = [f"--speech_encoder={whisper}", *swaps.get("train_args", [])]
        llm = _conf_value(recipe_dir / "conf" / "import_blsp_emo.yaml", "llm_name", conf_overrides)
        notes.append(f"BLSP_EMO={blsp_emo} is imported: its LLM ({llm}) and Whisper ({whisper}) are used as "
                     "configured, not swapped for the small ones")
    # the user's string as typed after the swaps: stages.sh splits it into words as in a run without --dry_run
    for flag in [*user_args, *(f for f in swaps if f not in user_args)]:
        out[flag] = " ".join(w for w in (*swaps.get(flag, []), user_args.get(flag, "")) if w)
    out["dry_run_max_per_set"] = json.dumps(table["max_per_set"])
    return out, notes


def _round_robin(items, n):
    """Up to ``n`` of ``items`` (utt_id, emotion) taken in turn from each emotion, in id order."""
    by_emotion = {}
    for utt, emotion in sorted(items):
        by_emotion.setdefault(str(emotion), []).append(utt)
    queues = [by_emotion[e] for e in sorted(by_emotion)]
    kept = []
    while len(kept) < n and any(queues):
        for q in queues:
            if q and len(kept) < n:
                kept.append(q.pop(0))
    return kept


def subset_manifests(data_dir, max_per_set, sets):
    """Keep at most ``max_per_set[set]`` (or ``max_per_set["test"]`` for other test sets) utterances of each
    manifest in ``data_dir``; the rest are counted in ``dry_run_subset.json``. Idempotent."""
    data_dir = Path(data_dir)
    report = {}
    for name in sets:
        path = data_dir / f"{name}.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: run stage 1 of the dry run first")
        manifest = json.loads(path.read_text(encoding="utf-8"))
        n = int(max_per_set.get(name, max_per_set.get("test")))
        kept = set(_round_robin([(k, v.get("emotion")) for k, v in manifest.items()], n))
        if len(kept) < len(manifest):
            atomic_write_text(path, json.dumps({k: v for k, v in manifest.items() if k in kept}, indent=2,
                                               ensure_ascii=False) + "\n")
        report[name] = {"kept": len(kept), "dropped_dry_run_subset": len(manifest) - len(kept)}
    previous = data_dir / "dry_run_subset.json"
    if previous.is_file():  # a re-run sees the already-cut manifests: keep the first counts
        old = json.loads(previous.read_text(encoding="utf-8"))
        report = {k: old.get(k, v) if old.get(k, {}).get("kept") == v["kept"] else v for k, v in report.items()}
    atomic_write_json(previous, report)
    return report
