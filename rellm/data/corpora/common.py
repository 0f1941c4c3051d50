"""Machinery every corpus preparer shares.

A preparer only knows its corpus: it walks the release, reads the labels and
transcripts and returns ``Candidate`` utterances (set, wav, labels), counting in
a ``PrepReport`` everything it could not use. ``run_preparation`` does the rest
the same way for every corpus: the idempotency check (options fingerprint),
the audio checks (missing, empty, unreadable), the duration policy, duplicate
ids, the manifests, ``prepare_report.json`` and ``data_root.txt``, all written
atomically and the done marker last, so an interrupted run is simply redone.
"""

import collections
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import soundfile
from tqdm import tqdm

from rellm.data.manifest import make_entry, write_data_root, write_manifest
from rellm.utils.config import ConfigError
from rellm.utils.drop_report import MAX_EXAMPLES, DropReport, ReasonCounts
from rellm.utils.io import atomic_write_json, read_json
from rellm.utils.stage import DoneMarker

logger = logging.getLogger(__name__)

REPORT_FILE = "prepare_report.json"
LOG_FILE = "prepare.log"
MARKER_NAME = "prepare"


class CorpusError(ConfigError):
    """The corpus is not where or not what the options say; the message says what to fix.

    A ``ConfigError`` so that stage 1 prints it as one line instead of a traceback.
    """


class CorpusNotFoundError(CorpusError, FileNotFoundError):
    """The corpus root is missing or empty."""


class DuplicateUtteranceError(CorpusError):
    """Two entries of a release map to the same utterance id."""


@dataclass(frozen=True)
class CorpusInfo:
    """What a user needs to be told when a corpus cannot be found."""

    name: str  # "IEMOCAP"
    db_var: str  # the db.sh variable holding the root, e.g. "IEMOCAP"
    layout: str  # the expected tree, a few lines
    obtain: str  # where and how to get it


@dataclass
class Candidate:
    """An utterance a preparer wants to keep, before the audio checks."""

    utt_id: str
    set_name: str
    wav: Path  # absolute path of the audio file
    transcript: str
    emotion: str
    arousal: float | None
    valence: float | None
    dominance: float | None
    speaker: str
    gender: str | None


class PrepReport(DropReport):
    """Counts by reason, with the first examples, of everything a preparer did not keep as is.

    * ``dropped``: utterances lost (unused label, missing audio, too short, ...);
    * ``skipped``: release items (files, lines) not read as utterances (macOS ``._*`` files,
      transcript lines of unlabelled turns, audio of an unlabelled test set, ...);
    * ``notes``: utterances kept with a caveat (unknown speaker, conflicting metadata, ...);
    * ``warnings``: corpus-level problems (a count off the published one, a missing speaker).

    ``to_dict()``: the ``rellm.utils.drop_report`` block (``kept``, ``dropped``, ``total_dropped``) plus
    ``skipped`` and ``notes`` (tables of the same shape as ``dropped``) and ``warnings``.
    """

    def __init__(self, root=None, max_examples=MAX_EXAMPLES):
        super().__init__(max_examples)
        self.root = Path(root) if root is not None else None  # path examples are shown relative to it
        self.skipped = ReasonCounts(max_examples)
        self.notes = ReasonCounts(max_examples)
        self.warnings = []

    def _example(self, example):
        if example is None:
            return None
        if isinstance(example, Path) and self.root is not None and example.is_relative_to(self.root):
            example = example.relative_to(self.root)
        return str(example)

    def drop(self, reason, example=None, count=1):
        super().drop(reason, self._example(example), count)

    def skip(self, reason, example=None, count=1):
        self.skipped.add(reason, self._example(example), count)

    def note(self, reason, example=None, count=1):
        self.notes.add(reason, self._example(example), count)

    def warn(self, message):
        logger.warning(message)
        self.warnings.append(message)

    def to_dict(self):
        return {**self.as_dict(), "skipped": self.skipped.as_dict(), "notes": self.notes.as_dict(),
                "warnings": list(self.warnings)}


def is_hidden(name):
    """macOS AppleDouble ``._*`` sidecars, ``.DS_Store`` and other dot files are never corpus data."""
    return name.startswith(".")


def list_files(folder, suffix, report=None, junk_reason="hidden_file"):
    """Regular files of ``folder`` ending in ``suffix`` (sorted), skipping and counting dot files."""
    out = []
    if not folder.is_dir():
        return out
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if is_hidden(entry.name):
            if report is not None:
                report.skip(junk_reason, Path(entry.path))
            continue
        if entry.is_file() and entry.name.endswith(suffix):
            out.append(Path(entry.path))
    return out


def read_text(path, report):
    """A text file as UTF-8; a file that is not is read as Latin-1 and counted, never silently mangled."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        report.note("text_file_not_utf8_read_as_latin1", path)
        return raw.decode("latin-1")


def not_found_message(info, problem):
    return (
        f"{problem}. Set {info.db_var} in db.sh (or db.local.sh, or export {info.db_var}=...) to the "
        f"{info.name} root, which must look like:\n{info.layout}\nTo obtain {info.name}: {info.obtain}"
    )


def check_corpus_root(data_folder, info):
    """The corpus root as an absolute ``Path``; a missing or empty one stops with what to do."""
    if data_folder is None or str(data_folder).strip() == "":
        raise CorpusNotFoundError(not_found_message(info, f"no {info.name} root given (data_folder is empty)"))
    root = Path(data_folder).expanduser()
    if not root.is_dir():
        raise CorpusNotFoundError(not_found_message(info, f"{info.name} root {root} does not exist"))
    if not any(not is_hidden(p.name) for p in root.iterdir()):
        raise CorpusNotFoundError(not_found_message(info, f"{info.name} root {root} is empty"))
    return root.resolve()


def find_corpus_dir(root, looks_like, info):
    """``root`` itself, or its single sub-folder, that ``looks_like`` the release top.

    Users often point at the folder the archive was unpacked into
    (``.../IEMOCAP/IEMOCAP_full_release``); we accept one level of nesting and
    keep the relative wav paths correct, but never guess between several.
    """
    if looks_like(root):
        return root
    inside = [p for p in sorted(root.iterdir()) if p.is_dir() and not is_hidden(p.name) and looks_like(p)]
    if len(inside) == 1:
        logger.info("using %s inside the given %s root %s", inside[0].name, info.name, root)
        return inside[0]
    problem = (
        f"{root} is not an {info.name} root"
        if not inside
        else (f"{root} holds several {info.name} copies ({', '.join(p.name for p in inside)}); point at one")
    )
    raise CorpusNotFoundError(not_found_message(info, problem))


def scale_rating(value, low, high):
    """Map a rating on ``[low, high]`` to ``[0, 1]``; outside the scale is a ``ValueError``."""
    value = float(value)
    if not low <= value <= high:
        raise ValueError(f"rating {value} outside [{low}, {high}]")
    return (value - low) / (high - low)


def probe_audio(path):
    """``(soundfile info, None)`` for a usable file, else ``(None, reason)``."""
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        return None, "missing_audio"
    except OSError:
        return None, "unreadable_audio"
    if size == 0:
        return None, "empty_audio"
    try:
        info = soundfile.info(str(path))
    except (RuntimeError, soundfile.LibsndfileError, OSError):  # LibsndfileError is a RuntimeError in some versions
        return None, "unreadable_audio"
    if info.frames <= 0 or info.samplerate <= 0:
        return None, "empty_audio"
    return info, None


def as_name_list(value, option):
    """``"train,valid"``, ``["train", "valid"]`` or null -> a tuple of names."""
    if value is None:
        return ()
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",")]
    elif isinstance(value, (list, tuple)):
        items = [str(v).strip() for v in value]
    else:
        raise ConfigError(f"--{option} must be a comma-separated list, got {value!r}")
    return tuple(v for v in items if v)


def duration_bounds(min_duration, max_duration):
    """Check the duration policy options; null or 0 disables a bound."""
    lo = float(min_duration) if min_duration else 0.0
    hi = float(max_duration) if max_duration else None
    if lo < 0 or (hi is not None and hi <= lo):
        raise ConfigError(f"need 0 <= min_duration < max_duration, got {min_duration} and {max_duration}")
    return lo, hi


def build_sets(candidates, corpus_dir, data_root, set_names, report, min_duration, max_duration, filter_sets):
    """Probe every candidate's audio and apply the duration policy.

    Returns ``({set: {utt_id: entry}}, {sample_rate: count}, [ids dropped by the duration policy]).``

    Duplicate utterance ids are an error: they mean two files of the release claim
    the same utterance (a doubly extracted archive, or two layouts mixed), and any
    choice between them would be a guess.
    """
    sets = {name: {} for name in set_names}
    where, duration_dropped = {}, []
    sample_rates = collections.Counter()
    for cand in tqdm(candidates, desc="checking audio", unit="utt", mininterval=2.0):
        if cand.utt_id in where:
            raise DuplicateUtteranceError(
                f"utterance id {cand.utt_id} appears twice: {where[cand.utt_id]} and {cand.wav}. "
                f"Remove one copy from {corpus_dir} (e.g. a second extraction of the archive) and re-run"
            )
        where[cand.utt_id] = cand.wav
        info, problem = probe_audio(cand.wav)
        if problem:
            report.drop(problem, cand.wav)
            continue
        duration = info.frames / info.samplerate
        if cand.set_name in filter_sets:
            if duration < min_duration:
                report.drop(f"shorter_than_{min_duration:g}s_in_{cand.set_name}", f"{cand.utt_id} ({duration:.2f}s)")
                duration_dropped.append(cand.utt_id)
                continue
            if max_duration is not None and duration > max_duration:
                report.drop(f"longer_than_{max_duration:g}s_in_{cand.set_name}", f"{cand.utt_id} ({duration:.2f}s)")
                duration_dropped.append(cand.utt_id)
                continue
        sample_rates[info.samplerate] += 1
        sets[cand.set_name][cand.utt_id] = make_entry(
            cand.wav.relative_to(data_root),
            duration,
            cand.transcript,
            cand.emotion,
            cand.arousal,
            cand.valence,
            cand.dominance,
            cand.speaker,
            cand.gender,
        )
    if len(sample_rates) > 1 or (sample_rates and 16000 not in sample_rates):
        report.warn(f"audio sample rates are {dict(sample_rates)}, not all 16 kHz; stage 2 resamples them")
    return sets, dict(sorted(sample_rates.items())), duration_dropped


def set_summary(entries):
    emotions = collections.Counter(e["emotion"] or "unlabelled" for e in entries.values())
    return {
        "utterances": len(entries),
        "hours": round(sum(e["duration"] for e in entries.values()) / 3600, 3),
        "emotions": dict(sorted(emotions.items())),
        "speakers": len({e["speaker"] for e in entries.values()}),
    }


def run_preparation(
    *,
    corpus,
    data_folder,
    save_folder,
    info,
    options,
    set_names,
    collect,
    min_duration,
    max_duration,
    duration_filter_sets,
    overwrite=False,
    skip_prep=False,
    check=None,
):
    """Prepare one corpus split into ``save_folder`` unless it is already done with ``options``.

    ``collect(root, report)`` returns ``(corpus_dir, candidates)``; ``check(sets, duration_dropped,
    report)`` may add corpus-level warnings (published counts). Returns the report as a dict.
    """
    save_folder = Path(save_folder)
    if skip_prep:
        logger.info("skip_prep=true: not preparing %s into %s", corpus, save_folder)
        return None
    root = check_corpus_root(data_folder, info)
    min_duration, max_duration = duration_bounds(min_duration, max_duration)
    filter_sets = as_name_list(duration_filter_sets, "duration_filter_sets")
    unknown = sorted(set(filter_sets) - set(set_names))
    if unknown:
        raise ConfigError(f"duration_filter_sets names unknown set(s) {unknown}; {corpus} has {list(set_names)}")
    options = {
        "corpus": corpus,
        "data_folder": str(root),
        **options,
        "min_duration": min_duration,
        "max_duration": max_duration,
        "duration_filter_sets": list(filter_sets),
    }
    marker = DoneMarker(
        save_folder,
        MARKER_NAME,
        hint=f're-run with ./run.sh --overwrite true (python -m rellm.bin.prepare: --overwrite=true), or delete {save_folder}',
    )
    outputs = [save_folder / f"{s}.json" for s in set_names] + [save_folder / REPORT_FILE]
    if not overwrite and marker.is_done(options):
        if all(p.is_file() for p in outputs):
            logger.info("%s is already prepared with these options; nothing to do", save_folder)
            return read_json(save_folder / REPORT_FILE)
        logger.warning("%s is marked done but some outputs are missing; preparing again", save_folder)
    previous = read_json(marker.path) if marker.path.is_file() else {}
    marker.clear()  # from here on the folder is in flux; a crash must not leave it marked done

    logger.info("preparing %s from %s into %s", corpus, root, save_folder)
    report = PrepReport(root)
    corpus_dir, candidates = collect(root, report)
    sets, sample_rates, duration_dropped = build_sets(
        candidates, corpus_dir, root, set_names, report, min_duration, max_duration, filter_sets
    )
    if check is not None:
        check(sets, duration_dropped, report)
    if not any(sets.values()):
        raise CorpusError(
            f"no usable utterance found under {root}: {report.to_dict()['dropped']}. "
            f"Check that {info.db_var} points at the {info.name} root:\n{info.layout}"
        )
    for name in set_names:
        if not sets[name]:
            report.warn(f"set '{name}' is empty")
        write_manifest(save_folder / f"{name}.json", sets[name])
    for stale in set(previous.get("sets", [])) - set(set_names):  # sets of an earlier run that no longer exist
        (save_folder / f"{stale}.json").unlink(missing_ok=True)

    summary = {name: set_summary(sets[name]) for name in set_names}
    report.keep(sum(s["utterances"] for s in summary.values()))
    report_dict = {
        "corpus": corpus,
        "split": options.get("split"),
        "data_root": str(root),
        "options": options,
        "sets": summary,
        "sample_rates": {str(k): v for k, v in sample_rates.items()},
        **report.to_dict(),
    }
    atomic_write_json(save_folder / REPORT_FILE, report_dict)
    write_data_root(save_folder, root)
    marker.mark_done(options, sets=list(set_names))
    log_summary(report_dict, save_folder)
    return report_dict


def log_summary(report, save_folder):
    for name, s in report["sets"].items():
        logger.info("%s: %d utterances, %.2f h, %s", name, s["utterances"], s["hours"], s["emotions"])
    for reason, slot in report["dropped"].items():
        logger.info("dropped %d: %s (e.g. %s)", slot["count"], reason, ", ".join(slot["examples"][:2]))
    for reason, slot in report["skipped"].items():
        logger.info("skipped %d: %s", slot["count"], reason)
    for reason, slot in report["notes"].items():
        logger.info("note, %d kept: %s", slot["count"], reason)
    logger.info(
        "kept %d utterances, dropped %d; details in %s",
        report["kept"],
        report["total_dropped"],
        Path(save_folder) / REPORT_FILE,
    )
