"""The stage-1 manifest: one SpeechBrain JSON file per set, keyed by utterance id.

Every entry has the same fields (``MANIFEST_FIELDS``)::

    {"Ses01F_impro01_F000": {"wav": "{data_root}/Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav",
                             "duration": 1.9456, "transcript": "Excuse me.", "emotion": "neutral",
                             "arousal": 0.375, "valence": 0.375, "dominance": 0.375,
                             "speaker": "Ses01F", "gender": "F"}}

``wav`` is relative to the corpus root behind a ``{data_root}`` placeholder, so a
manifest survives moving the corpus. SpeechBrain's loader
(``DynamicItemDataset.from_json(path, replacements={"data_root": root})``) runs
``str.format_map`` over *every* string value, so a literal brace in a
transcript or a path would raise or be mangled there. We therefore double the
braces of every string we write (``{`` -> ``{{``); ``format_map`` turns them back
into single braces. ``read_manifest`` applies the same loader, so readers of the
manifest never see the escaping.
"""

import json
import math
from pathlib import Path, PurePath

from rellm.data.emotions import EMOTIONS
from rellm.utils.io import atomic_write_json, atomic_write_text

DATA_ROOT_KEY = "data_root"
DATA_ROOT_PLACEHOLDER = "{" + DATA_ROOT_KEY + "}"
DATA_ROOT_FILE = "data_root.txt"
MANIFEST_FIELDS = ("wav", "duration", "transcript", "emotion", "arousal", "valence", "dominance", "speaker", "gender")
GENDERS = ("F", "M")


def escape_braces(text):
    """Make ``text`` survive SpeechBrain's ``str.format_map`` unchanged."""
    return text.replace("{", "{{").replace("}", "}}")


def wav_template(relpath):
    """``"{data_root}/<relpath>"`` for a path relative to the corpus root (always with ``/``)."""
    relpath = PurePath(relpath)
    if relpath.is_absolute() or ".." in relpath.parts:
        raise ValueError(f"wav path {str(relpath)!r} must be relative to the corpus root and stay inside it")
    return f"{DATA_ROOT_PLACEHOLDER}/{escape_braces(relpath.as_posix())}"


def _unit_or_none(name, value):
    if value is None:
        return None
    value = float(value)
    if math.isnan(value):
        return None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1] or null, got {value}")
    return round(value, 6)  # rater means have at most 6 decimals; no 0.10000000000000002 in the files


def make_entry(relpath, duration, transcript, emotion, arousal, valence, dominance, speaker, gender):
    """One manifest entry with every field checked; a wrong value is a programming error in a preparer.

    ``emotion`` None: an unlabelled utterance (ASR data for training step 1, docs/method.md#data-records)."""
    if emotion is not None and emotion not in EMOTIONS:
        raise ValueError(f"emotion {emotion!r} is not one of {', '.join(EMOTIONS)}")
    if gender is not None and gender not in GENDERS:
        raise ValueError(f"gender must be 'F', 'M' or null, got {gender!r}")
    if not duration or duration <= 0:
        raise ValueError(f"duration must be positive, got {duration!r}")
    return {
        "wav": wav_template(relpath),
        "duration": round(float(duration), 4),
        "transcript": escape_braces(transcript),
        "emotion": emotion,
        "arousal": _unit_or_none("arousal", arousal),
        "valence": _unit_or_none("valence", valence),
        "dominance": _unit_or_none("dominance", dominance),
        "speaker": escape_braces(str(speaker)),
        "gender": gender,
    }


def write_manifest(path, entries):
    """Atomically write ``{utt_id: entry}`` sorted by utterance id (deterministic files, clean diffs)."""
    atomic_write_json(path, {utt: entries[utt] for utt in sorted(entries)})


REQUIRED_FIELDS = ("wav", "duration", "transcript", "emotion")


def format_strings(data, replacements):
    """Every string value in nested dicts and lists through ``str.format_map(replacements)``, in place:
    SpeechBrain's ``load_data_json`` rule (``{key}`` replaced, ``{{``/``}}`` unescaped). Ours rather than an
    import of ``speechbrain.dataio``: that costs seconds, and every stage reads a manifest, even one that
    finds its work done (the test compares both on the same file)."""
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, item in list(items):
        if isinstance(item, (dict, list)):
            format_strings(item, replacements)
        elif isinstance(item, str):
            data[key] = item.format_map(replacements)
    return data


def read_manifest(path, data_root=None):
    """Load a manifest exactly as SpeechBrain does (``speechbrain.dataio.dataio.load_data_json``).

    With ``data_root`` the ``{data_root}`` placeholder is replaced by it; without,
    the placeholder is kept (and only the brace escaping is undone).
    """
    from rellm.utils.stage import UserError

    root = DATA_ROOT_PLACEHOLDER if data_root is None else str(data_root)
    try:
        with open(path, encoding="utf-8") as f:
            entries = format_strings(json.load(f), {DATA_ROOT_KEY: root})
    except ValueError as err:  # JSONDecodeError included
        raise UserError(f"{path} is not a valid JSON manifest ({err}); re-run stage 1 (data preparation)") from err
    for utt, entry in entries.items():
        missing = [k for k in REQUIRED_FIELDS if k not in entry] if isinstance(entry, dict) else list(REQUIRED_FIELDS)
        if missing:
            raise UserError(f"{path}: utterance {utt!r} has no {', '.join(missing)} field (every entry needs "
                            f"{', '.join(REQUIRED_FIELDS)}); re-run stage 1 (data preparation) or fix that entry")
    return entries


def write_data_root(save_folder, data_root):
    atomic_write_text(Path(save_folder) / DATA_ROOT_FILE, f"{data_root}\n")


def read_data_root(save_folder):
    """The corpus root recorded by stage 1 in ``<save_folder>/data_root.txt``."""
    path = Path(save_folder) / DATA_ROOT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; run stage 1 (data preparation) first")
    return path.read_text(encoding="utf-8").rstrip("\n")


__all__ = [
    "DATA_ROOT_FILE",
    "DATA_ROOT_KEY",
    "DATA_ROOT_PLACEHOLDER",
    "MANIFEST_FIELDS",
    "escape_braces",
    "make_entry",
    "read_data_root",
    "read_manifest",
    "wav_template",
    "write_data_root",
    "write_manifest",
]
