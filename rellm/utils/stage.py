"""Done-markers with an options fingerprint, shared by every recipe stage.

A finished step writes ``.done.<name>`` holding the options it ran with.
Re-running with the same options skips the work; re-running with different
options stops with a message saying how to overwrite (the SpeechBrain
LibriSpeech-prep pattern, but an error instead of a silent reuse).

A marker also records the command that made the output (icefall's RESULTS.md lists them): in the marker
(``command``) and in ``command.txt`` beside it, with the recipe command that ran the stage
(``$RELLM_RECIPE_COMMAND``, exported by the recipe's run.sh). The Python command is the one
``rellm.utils.config.run_main`` ran (``record_command``); a stage's ``main`` called in-process records none.

A marker also records the fingerprint of every input the step read (``inputs``, ``rellm.utils.lineage``): a
step whose inputs changed since is stale, stops before any work naming what changed and how to redo it, and is
redone with ``overwrite``; a stale output further upstream stops it in every case (docs/reliability.md).
"""
import datetime
import hashlib
import json
import os
import shlex
from pathlib import Path

from rellm.utils.faults import fault_point
from rellm.utils.io import atomic_write_json, atomic_write_text, read_json
from rellm.utils.lineage import changes, display_path, read_marker, upstream_problems

COMMAND_FILE = "command.txt"
RECIPE_COMMAND_ENV = "RELLM_RECIPE_COMMAND"
_python_command = None  # set by record_command (run_main)


class OptionsChangedError(RuntimeError):
    """The output exists but was produced with other options."""


class StaleInputsError(OptionsChangedError):
    """The output exists with these options but one of its inputs has changed since (``--overwrite`` redoes it)."""


class UpstreamStaleError(OptionsChangedError):
    """An upstream output this step would read is itself stale: redo that stage first (overwriting this one
    cannot help)."""


def _short(value, limit=60):
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _describe_change(key, old, new):
    """``key: old -> new``; for a dict (e.g. hashes per system) only the entries that differ, values shortened."""
    if isinstance(old, dict) and isinstance(new, dict):
        parts = [f"{key}.{k}: {_short(old.get(k))} -> {_short(new.get(k))}"
                 for k in sorted(set(old) | set(new), key=str) if old.get(k) != new.get(k)]
        return ", ".join(parts[:4]) + (f", and {len(parts) - 4} more" if len(parts) > 4 else "")
    return f"{key}: {_short(old)} -> {_short(new)}"


def redo_command(stage):
    """The recipe command that redoes ``stage`` and whatever depends on it (each later stage redoes only the
    outputs whose inputs changed)."""
    if stage:
        return f"./run.sh --stage {str(stage).rstrip('ab')} --overwrite true"
    return "re-run the stage that made it with --overwrite=true (its command is in command.txt beside it)"


def describe_stale(marker_path, found, stage=None, upstream=False):
    """One message for the outputs whose inputs changed: the output, each changed input, when, and what to run."""
    folder = display_path(Path(marker_path).parent)
    what = f"{folder}{f' (stage {stage})' if stage else ''}"
    detail = "; ".join(c.describe() for c in found[:4]) + (f"; and {len(found) - 4} more" if len(found) > 4 else "")
    lead = f"{what} is out of date, so it cannot be used" if upstream else f"{what} is out of date"
    return f"{lead}: {detail}. Redo it: {redo_command(stage)}"


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


def record_command(module, argv):
    """Remember ``python -m <module> <argv...>`` (shell-quoted) as the command of this process's outputs
    (``module`` None: forget it)."""
    global _python_command
    _python_command = None if module is None else shlex.join(["python", "-m", module, *map(str, argv)])


def python_command():
    """The recorded ``python -m rellm.bin.<stage> ...`` of this process, or None."""
    return _python_command


def recipe_command():
    """The recipe command that ran this process (``$RELLM_RECIPE_COMMAND``, exported by run.sh), or None."""
    return os.environ.get(RECIPE_COMMAND_ENV, "").strip() or None


def write_command_file(folder, python_commands):
    """``<folder>/command.txt``: ``recipe: <$RELLM_RECIPE_COMMAND>`` (when set), then ``python: <command>`` lines."""
    recipe = recipe_command()
    lines = ([f"recipe: {recipe}"] if recipe else []) + [f"python: {c}" for c in python_commands]
    atomic_write_text(Path(folder) / COMMAND_FILE, "".join(line + "\n" for line in lines))


def read_command_file(folder):
    """``(recipe command or None, [python commands])`` of ``<folder>/command.txt`` (None, [] without one)."""
    path = Path(folder) / COMMAND_FILE
    recipe, python = None, []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition(": ")
            if key == "recipe":
                recipe = value
            elif key == "python":
                python.append(value)
    return recipe, python


def fingerprint(options):
    """A stable sha256 over a dict of options (order-independent)."""
    blob = json.dumps(_jsonable(options), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


class DoneMarker:
    """``DoneMarker(folder, name)``: is this step done with these options and these inputs?

    ``overwrite=True`` turns an options or inputs mismatch into "not done" so the caller recomputes (and the
    caller must then replace, never append). ``inputs`` (``rellm.utils.lineage.Inputs``): what the step reads;
    recorded by ``mark_done`` and compared by ``is_done``. ``stage``: the recipe stage ("4", "2a"), for the
    command that redoes a stale output.
    ``command_file=False``: record the command in the marker only (a shard's marker: its merge lists them).
    """

    def __init__(self, folder, name, hint=None, command_file=True, stage=None):
        self.path = Path(folder) / f".done.{name}"
        self.name = name
        self.stage = stage
        self.command_file = command_file
        self.hint = hint or "re-run with ./run.sh --overwrite true (a stage run by hand: --overwrite=true), or delete the folder"

    def check_upstream(self, inputs):
        """Stop (``UpstreamStaleError``) when an output upstream of ``inputs`` is out of date."""
        problems = upstream_problems(inputs) if inputs else []
        if problems:
            path, found = problems[0]
            stored = read_marker(path) or {}
            raise UpstreamStaleError(
                f"{self.path.parent} cannot be made from the current outputs: "
                + describe_stale(path, found, stored.get("stage"), upstream=True)
                + (f" (and {len(problems) - 1} other stale output(s) upstream)" if len(problems) > 1 else ""))

    def is_done(self, options, overwrite=False, inputs=None):
        self.check_upstream(inputs)
        if not self.path.exists():
            return False
        stored = read_json(self.path)
        if stored.get("fingerprint") == fingerprint(options):
            found = changes(self.path, stored.get("inputs"), inputs) if inputs is not None else []
            if not found:
                return True
            if overwrite:
                return False
            raise StaleInputsError(describe_stale(self.path, found, self.stage))
        if overwrite:
            return False
        old = stored.get("options", {})
        new = _jsonable(options)
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        details = ", ".join(_describe_change(k, old.get(k), new.get(k)) for k in changed[:8])
        raise OptionsChangedError(
            f"{self.path.parent} was made by '{self.name}' with other options ({details}). "
            f"To replace it, {self.hint}."
        )

    def mark_done(self, options, earlier_commands=(), inputs=None, **extra):
        """Write the marker (and ``command.txt``: ``earlier_commands``, e.g. the shard jobs', then this one)."""
        fault_point(f"mark_done/{self.name}")  # test hook: RELLM_FAULT (rellm/utils/faults.py)
        command = python_command()
        if self.command_file and (command or earlier_commands):
            write_command_file(self.path.parent, [*earlier_commands, *([command] if command else [])])
        atomic_write_json(
            self.path,
            {
                "fingerprint": fingerprint(options),
                "options": _jsonable(options),
                "date": datetime.datetime.now().isoformat(timespec="seconds"),
                **({"stage": str(self.stage)} if self.stage else {}),
                **({"inputs": inputs.record(self.path.parent)} if inputs else {}),
                **({"command": command} if command else {}),
                **extra,
            },
        )

    def clear(self):
        self.path.unlink(missing_ok=True)
