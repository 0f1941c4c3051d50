"""Neutral synthetic speech for the mini recipe's training step 1 (the semantic alignment on "ASR" data).

BLSP-Emo's step 1 runs on a large ASR corpus, not on the SER corpus (docs/method.md#training-steps). The mini
recipe's stand-in: sentences generated here from small word lists (none of them a sentence of the
mini SER corpus, ``rellm.data.corpora.mini.SENTENCES``), spoken by eSpeak NG through the mini
corpus's own synthesiser in its neutral style (jittered like the corpus) by both voices. The
manifests have no emotion label and no A/V/D, as ASR data. A few hundred utterances at most, so
that the whole mini run stays within about 30 minutes on 2 CPU cores.
"""
import hashlib
import logging
from pathlib import Path

import numpy as np

from rellm.data.corpora.common import REPORT_FILE, PrepReport
from rellm.data.corpora.espeak_synthesis import SAMPLE_RATE, synthesise_corpus
from rellm.data.manifest import write_data_root
from rellm.utils.io import atomic_write_json
from rellm.utils.stage import DoneMarker

logger = logging.getLogger(__name__)

SUBJECTS = ("The librarian", "My neighbour", "The old farmer", "A young engineer", "The bus driver", "Our teacher",
            "The museum guide", "A quiet student", "The baker", "Her cousin")
ACTIONS = ("carried the boxes to", "painted the fence near", "read a long report in", "waited for the train at",
           "planted some tomatoes behind", "fixed the broken lamp in", "counted the chairs in",
           "left a small parcel at", "opened the windows of", "swept the floor of")
PLACES = ("the station", "the town hall", "the garden", "the harbour", "the village school", "the corner shop",
          "the hospital", "the public library", "the market square", "the hotel")
TIMES = ("on Monday morning", "after lunch", "before the rain started", "late in the evening", "last weekend",
         "at half past nine")
MAX_SENTENCES = 400


def generate_sentences(num_sentences, seed, exclude=()):
    """``num_sentences`` distinct sentences ``SUBJECT ACTION PLACE TIME.``, a seeded sample; none in ``exclude``."""
    combos = [f"{s} {a} {p} {t}." for s in SUBJECTS for a in ACTIONS for p in PLACES for t in TIMES]
    excluded = {e.strip().lower() for e in exclude}
    combos = [c for c in combos if c.lower() not in excluded]
    if not 1 <= num_sentences <= min(MAX_SENTENCES, len(combos)):
        raise ValueError(f"num_sentences must be in 1..{min(MAX_SENTENCES, len(combos))}, got {num_sentences}")
    order = np.random.default_rng(seed).permutation(len(combos))[:num_sentences]
    return [combos[i] for i in order]


def read_sentences_file(path, num_sentences, seed, exclude=()):
    """A seeded sample of ``num_sentences`` of the file's sentences, and what was left out before sampling.

    UTF-8, one sentence per line; blank lines and lines starting with ``#`` are skipped. A repeated
    sentence and one in ``exclude`` (case-insensitive) are left out and counted: ``{"lines", "duplicate",
    "excluded"}``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sentences_file {path} does not exist (one sentence per line; empty: the templates)")
    excluded = {e.strip().lower() for e in exclude}
    sentences, seen, counts = [], set(), {"lines": 0, "duplicate": 0, "excluded": 0}
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        counts["lines"] += 1
        key = text.lower()
        if key in excluded or key in seen:
            counts["excluded" if key in excluded else "duplicate"] += 1
            continue
        seen.add(key)
        sentences.append(text)
    if not 1 <= num_sentences <= len(sentences):
        raise ValueError(f"num_sentences must be in 1..{len(sentences)} for {path} ({counts['lines']} sentences, "
                         f"{counts['duplicate']} repeated, {counts['excluded']} of the SER corpus), got {num_sentences}")
    order = np.random.default_rng(seed).permutation(len(sentences))[:num_sentences]
    return [sentences[i] for i in order], counts


def plan_asr_set(seed, voices, num_sentences, valid_sentences, sentences=None):
    """Every utterance to make (no audio): id, set, transcript, voice, neutral prosody with jitter.

    ``sentences``: the sentences to speak (``read_sentences_file``); None: ``generate_sentences``.
    """
    from rellm.data.corpora import mini

    unknown = [v for v in voices if v not in mini.VOICES]
    if unknown:
        raise ValueError(f"unknown mini voice(s) {unknown}; choose from {', '.join(mini.VOICES)}")
    if not 0 < valid_sentences < num_sentences:
        raise ValueError(f"valid_sentences must be in 1..{num_sentences - 1}, got {valid_sentences}")
    if sentences is None:
        sentences = generate_sentences(num_sentences, seed, exclude=mini.SENTENCES)
    plan = []
    for s_idx, text in enumerate(sentences):
        for voice in voices:
            speaker, gender = mini.VOICES[voice]
            utt_id = f"asr_{speaker}_s{s_idx:03d}"
            rng = mini.utterance_rng(seed, utt_id)
            plan.append({
                "utt_id": utt_id, "set": "valid" if s_idx < valid_sentences else "train", "transcript": text,
                "voice": voice, "speaker": speaker, "gender": gender,
                "params": mini.jittered_params("neutral", rng), "relpath": f"wav/{speaker}/{utt_id}.wav",
                "noise_seed": int(rng.integers(1, 2**31 - 1)),
            })
    return plan


def prepare_mini_asr(data_folder, save_folder, split="asr", seed=4321, voices=("en-us", "en-us+f3"),
                     num_sentences=100, valid_sentences=10, sentences_file="", overwrite=False, skip_prep=False):
    """Synthesise the step-1 set and write ``save_folder/{train,valid}.json`` (no emotion, no A/V/D).

    ``data_folder`` empty: ``<save_folder>/../downloads/mini_asr`` (the recipe's ``downloads/``).
    ``num_sentences`` x ``len(voices)`` utterances; the first ``valid_sentences`` sentences are ``valid``.
    ``sentences_file``: empty, the template sentences; else a sample of that file's (``read_sentences_file``).
    """
    from rellm.data.corpora import mini

    if skip_prep:
        return None
    save_folder = Path(save_folder)
    data_folder = (Path(data_folder).resolve() if data_folder not in (None, "")
                   else (save_folder.resolve() / ".." / ".." / "downloads" / "mini_asr").resolve())
    voices = list(voices)
    sentences, file_counts = None, None
    if sentences_file not in (None, ""):
        sentences, file_counts = read_sentences_file(sentences_file, num_sentences, seed, exclude=mini.SENTENCES)
        logger.info("%s: %d sentences, %d repeated and %d of the SER corpus left out; using %d", sentences_file,
                    file_counts["lines"], file_counts["duplicate"], file_counts["excluded"], num_sentences)
    plan = plan_asr_set(seed, voices, num_sentences, valid_sentences, sentences)
    options = {"split": split, "seed": seed, "voices": voices, "num_sentences": num_sentences,
               "valid_sentences": valid_sentences, "neutral_style": mini.STYLES["neutral"], "jitter": mini.JITTER,
               "sentences": hashlib.sha256("\n".join(sorted({p["transcript"] for p in plan})).encode()).hexdigest()[:16]}
    marker = DoneMarker(save_folder, "prepare_mini_asr")
    if marker.is_done({**options, "data_root": str(data_folder)}, overwrite=overwrite):
        logger.info("mini_asr manifests in %s are up to date; skipping", save_folder)
        return None
    marker.clear()
    logger.info("synthesising %d neutral step-1 utterances (%d sentences x %d voices) into %s", len(plan),
                num_sentences, len(voices), data_folder)
    info = synthesise_corpus(plan, data_folder, options, overwrite=overwrite)
    manifests, drops = {"train": {}, "valid": {}}, PrepReport(data_folder)
    for item in plan:
        got = info[item["utt_id"]]
        if got is None or got[0] == 0:
            drops.drop("missing_wav" if got is None else "empty_synthesis", item["utt_id"])
            continue
        drops.keep()
        manifests[item["set"]][item["utt_id"]] = {
            "wav": "{data_root}/" + item["relpath"], "duration": round(got[0] / SAMPLE_RATE, 4),
            "transcript": item["transcript"], "emotion": None, "arousal": None, "valence": None, "dominance": None,
            "speaker": item["speaker"], "gender": item["gender"],
        }
    for name, manifest in manifests.items():
        atomic_write_json(save_folder / f"{name}.json", manifest)
    write_data_root(save_folder, data_folder)
    report = {"corpus": "mini_asr", "split": split, "data_root": str(data_folder),
              "options": {k: v for k, v in options.items() if k not in ("neutral_style", "jitter")},
              "sentences_file": None if file_counts is None else {"path": str(sentences_file), **file_counts},
              "sets": {name: {"utterances": len(m), "hours": round(sum(u["duration"] for u in m.values()) / 3600, 4)}
                       for name, m in manifests.items()},
              **drops.to_dict()}
    atomic_write_json(save_folder / REPORT_FILE, report)
    drops.log(logger, "mini_asr")
    marker.mark_done({**options, "data_root": str(data_folder)})
    return report
