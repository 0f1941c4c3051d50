"""Done-markers with an options fingerprint, shared by every recipe stage.

A finished step writes ``.done.<name>`` holding the options it ran with.
Re-running with the same options skips the work; re-running with different
options stops with a message saying how to overwrite (the SpeechBrain
LibriSpeech-prep pattern, but an error instead of a silent reuse).
"""
import datetime
import hashlib
import json
from pathlib import Path

from rellm.utils.faults import fault_point
from rellm.utils.io import atomic_write_json, read_json


class OptionsChangedError(RuntimeError):
    """The output exists but was produced with other options."""


class UserError(RuntimeError):
    """A failure the user can act on: ``run_main`` prints its one-line message instead of a traceback
    (bad or damaged input, a held lock, a non-finite loss)."""


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def fingerprint(options):
    """A stable sha256 over a dict of options (order-independent)."""
    blob = json.dumps(_jsonable(options), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


class DoneMarker:
    """``DoneMarker(folder, name)``: is this step done with these options?

    ``overwrite=True`` turns an options mismatch into "not done" so the
    caller recomputes (and the caller must then replace, never append).
    """

    def __init__(self, folder, name, hint=None):
        self.path = Path(folder) / f".done.{name}"
        self.name = name
        self.hint = hint or "re-run with ./run.sh --overwrite true (a stage run by hand: --overwrite=true), or delete the folder"

    def is_done(self, options, overwrite=False):
        if not self.path.exists():
            return False
        stored = read_json(self.path)
        if stored.get("fingerprint") == fingerprint(options):
            return True
        if overwrite:
            return False
        old = stored.get("options", {})
        new = _jsonable(options)
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        details = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed[:8])
        raise OptionsChangedError(
            f"{self.path.parent} was made by '{self.name}' with other options ({details}). "
            f"To replace it, {self.hint}."
        )

    def mark_done(self, options, **extra):
        fault_point(f"mark_done/{self.name}")  # test hook: RELLM_FAULT (rellm/utils/faults.py)
        atomic_write_json(
            self.path,
            {
                "fingerprint": fingerprint(options),
                "options": _jsonable(options),
                "date": datetime.datetime.now().isoformat(timespec="seconds"),
                **extra,
            },
        )

    def clear(self):
        self.path.unlink(missing_ok=True)
