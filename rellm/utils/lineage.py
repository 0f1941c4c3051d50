"""Lineage: what each stage's output was made from, as a chain of fingerprints.

Every done marker (``rellm.utils.stage.DoneMarker``) records, besides its own options, one entry per input it
read (``inputs``). An entry is one of:

* ``marker``: the done marker of the upstream stage that made the input (``.done.respond_merge`` of stage 3, ...).
  Its fingerprint is the hash of the marker file, which is rewritten whenever that stage redoes its work and which
  itself names that stage's inputs: following markers covers everything upstream.
* ``file``: a small file without a marker (a corpus manifest, a config): a hash of its content.
* ``folder``: a model folder (an imported checkpoint, the emotion encoder, a converted model): the names, sizes and
  a content sample (first and last MiB) of its files; small files are hashed whole. Weights are never read whole.
* ``audio``: the audio files a manifest names: their sizes and modification times (never their content).
* a model given by name (registry, hub or path), resolved without loading or downloading it
  (``rellm.pretrained.identity.add_model``): a ``file`` (its card), a ``folder`` or only its ``name``.

An output whose recorded inputs differ from the current ones is *stale*. ``DoneMarker.is_done`` stops such a
stage before any work and names the input, when it changed and the command that redoes it; ``--overwrite=true``
redoes it. Before a stage runs, :func:`upstream_problems` also walks the chain of its marker inputs: an upstream
output that is itself stale (say stage 4 trained on responses stage 3 has since rewritten) stops the stage too,
even with ``--overwrite``, because redoing this stage cannot fix it. Paths are stored relative to the marker's
folder as well as absolute, so a recipe folder that is moved keeps its lineage.
"""
import datetime
import hashlib
import json
import os
from pathlib import Path

SAMPLE_BYTES = 1 << 20   # files larger than SMALL_FILE are fingerprinted by their size and first and last MiB
SMALL_FILE = 4 << 20


def _sha(data):
    return hashlib.sha256(data).hexdigest()[:16]


def _iso(timestamp):
    return datetime.datetime.fromtimestamp(timestamp).isoformat(timespec="seconds")


def file_fingerprint(path, whole=False):
    """A hash of a file's content: all of it when small (or ``whole``), else its size, first and last MiB."""
    path = Path(path)
    size = path.stat().st_size
    h = hashlib.sha256()
    with open(path, "rb") as f:
        if whole or size <= SMALL_FILE:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        else:
            h.update(str(size).encode())
            h.update(f.read(SAMPLE_BYTES))
            f.seek(size - SAMPLE_BYTES)
            h.update(f.read(SAMPLE_BYTES))
    return h.hexdigest()[:16]


def _folder_files(folder):
    """The files of a model folder, sorted, without hidden entries (locks, markers, staging folders) or logs."""
    files = []
    for root, dirs, names in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in ("log", "__pycache__"))
        files += [Path(root) / n for n in sorted(names) if not n.startswith(".") and not n.endswith((".log", ".lock"))]
    return files


def folder_fingerprint(folder):
    """Names, sizes and content samples of a folder's files (see :func:`file_fingerprint`)."""
    folder = Path(folder)
    h = hashlib.sha256()
    for path in _folder_files(folder):
        h.update(f"{path.relative_to(folder)}\0{file_fingerprint(path)}\0".encode())
    return h.hexdigest()[:16]


def audio_fingerprint(wav_paths):
    """Sizes and modification times of the audio files (a missing file counts as such)."""
    h = hashlib.sha256()
    for wav in sorted(str(w) for w in wav_paths):
        try:
            st = os.stat(wav)
            h.update(f"{wav}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{wav}\0missing\n".encode())
    return h.hexdigest()[:16]


def _manifest_wavs(manifest_path, data_root=None):
    """The audio paths a SpeechBrain JSON manifest names, as stage 1 writes them (``rellm.data.manifest``: a
    ``{data_root}`` placeholder, the root in ``data_root.txt`` beside it, braces escaped). Read here with the
    format's own two rules rather than through ``rellm.data``, which builds on this module."""
    manifest_path = Path(manifest_path)
    if data_root is None:
        root_file = manifest_path.parent / "data_root.txt"
        data_root = root_file.read_text(encoding="utf-8").rstrip("\n") if root_file.is_file() else "{data_root}"
    with open(manifest_path, encoding="utf-8") as f:
        entries = json.load(f)
    return [entry["wav"].format_map({"data_root": str(data_root)}) for entry in entries.values()
            if isinstance(entry, dict) and isinstance(entry.get("wav"), str)]


def current_fingerprint(kind, path, data_root=None):
    """The fingerprint an input of ``kind`` at ``path`` has now (``"missing"`` when it is gone)."""
    path = Path(path)
    if kind == "audio":
        if not path.is_file():
            return "missing"
        return audio_fingerprint(_manifest_wavs(path, data_root))
    if kind == "folder":
        return folder_fingerprint(path) if path.is_dir() else "missing"
    if kind in ("marker", "file"):
        return file_fingerprint(path, whole=True) if path.is_file() else "missing"
    raise ValueError(f"unknown lineage input kind {kind!r}")


def _changed_at(kind, path):
    """When an input was last remade: a marker's ``date``, else the newest modification time."""
    path = Path(path)
    try:
        if kind == "marker":
            return json.loads(path.read_text(encoding="utf-8")).get("date")
        if kind == "folder":
            files = _folder_files(path)
            return _iso(max(p.stat().st_mtime for p in files)) if files else None
        if kind == "audio":
            return None
        return _iso(path.stat().st_mtime)
    except (OSError, ValueError):
        return None


class Inputs:
    """The inputs of one stage run, by name: ``Inputs().marker("responses_train", path).file("config", path)``.

    ``record(marker_folder)`` is what the done marker stores: per input its kind, path (absolute, and relative to
    the marker's folder), fingerprint and date.
    """

    def __init__(self):
        self.entries = {}

    def _add(self, name, kind, path, what=None, data_root=None):
        path = Path(path).absolute()
        entry = {"kind": kind, "path": str(path), "fingerprint": current_fingerprint(kind, path, data_root)}
        date = _changed_at(kind, path)
        if date:
            entry["date"] = date
        if what:
            entry["what"] = what
        if data_root is not None:
            entry["data_root"] = str(data_root)
        self.entries[name] = entry
        return self

    def marker(self, name, path):
        """An upstream stage's done marker (``.done.<name>`` file)."""
        return self._add(name, "marker", path)

    def file(self, name, path):
        return self._add(name, "file", path)

    def folder(self, name, path):
        return self._add(name, "folder", path)

    def audio(self, name, manifest_path, data_root=None):
        """The audio a manifest names (sizes and modification times)."""
        return self._add(name, "audio", manifest_path, data_root=data_root)

    def resolved(self, name, kind, path, what=None):
        """An input already resolved to ``kind`` (``file`` or ``folder``) at ``path``; ``kind`` None: only the name
        ``path`` can be recorded (a hub model that is not cached). Models are added this way by
        ``rellm.pretrained.identity.add_model``, which knows the model registry and the caches."""
        if kind is None:
            self.entries[name] = {"kind": "name", "path": str(path), "fingerprint": _sha(str(path).encode()),
                                  "what": what}
            return self
        return self._add(name, kind, path, what=what)

    def extend(self, other):
        self.entries.update(other.entries if isinstance(other, Inputs) else other)
        return self

    def __bool__(self):
        return bool(self.entries)

    def record(self, marker_folder):
        out = {}
        for name, entry in sorted(self.entries.items()):
            entry = dict(entry)
            if entry["kind"] != "name":
                entry["relative"] = os.path.relpath(entry["path"], Path(marker_folder).absolute())
            out[name] = entry
        return out


# The done markers of the stage outputs later stages read: stage 2's features, stage 3's responses, stage 5's answers.
FEATURES_MARKER = ".done.extract_merge"
RESPONSES_MARKER = ".done.respond_merge"
ANSWERS_MARKER = ".done.infer_merge"


def stage_output(inputs, name, folder, marker, fallback):
    """Add the output of an upstream stage in ``folder`` to ``inputs``: its done marker ``marker``, or, in a
    folder made without one (by hand, or by a test), the file ``fallback`` that is read from it."""
    folder = Path(folder)
    if (folder / marker).is_file():
        return inputs.marker(name, folder / marker)
    return inputs.file(name, folder / fallback)


# Done markers whose folder is itself a model another stage reads (stage 2a's emotion encoder, stage 4's final/).
MODEL_MARKERS = (".done.train_emotion_encoder", ".done.train", ".done.import_blsp_emo")


def done_marker_of(folder):
    """The done marker of a folder that a stage made (an emotion encoder of stage 2a, an experiment of stage 4),
    or None for any other folder or name."""
    folder = Path(str(folder)).expanduser()
    if not folder.is_dir():
        return None
    for name in MODEL_MARKERS:
        if (folder / name).is_file():
            return folder / name
    if folder.name == "final" and (folder.parent / ".done.train").is_file():
        return folder.parent / ".done.train"
    return None


def entry_path(entry, marker_folder):
    """Where a recorded input is now: beside the marker (its relative path) when that exists, else the absolute
    path recorded (a recipe folder that was moved keeps its lineage)."""
    relative = entry.get("relative")
    if relative is not None:
        candidate = Path(os.path.normpath(Path(marker_folder) / relative))
        if candidate.exists() or not Path(entry["path"]).exists():
            return candidate
    return Path(entry["path"])


def entry_now(entry, marker_folder):
    """``(fingerprint now, path now)`` of a recorded input."""
    if entry["kind"] == "name":
        return entry["fingerprint"], entry["path"]
    path = entry_path(entry, marker_folder)
    return current_fingerprint(entry["kind"], path, entry.get("data_root")), path


def display_path(path):
    """A path as a user reads it in a message: relative to the current folder (the recipe) when inside it."""
    path = Path(path)
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


class Change:
    """One input whose fingerprint differs from the recorded one."""

    def __init__(self, output, name, entry, path, now):
        self.output, self.name, self.entry, self.path, self.now = Path(output), name, entry, Path(path), now

    @property
    def when(self):
        if self.now == "missing":
            return None
        return _changed_at(self.entry["kind"], self.path) if self.entry["kind"] != "name" else None

    def describe(self):
        what = {"marker": "the output of", "file": "the file", "folder": "the folder", "audio": "the audio named by",
                "model": "the model"}.get(self.entry["kind"], "")
        what_path = display_path(self.path.parent if self.entry["kind"] == "marker" else self.path)
        if self.now == "missing":
            return f"its input '{self.name}' ({what} {what_path}) no longer exists"
        when = self.when
        return (f"its input '{self.name}' ({what} {what_path}) changed"
                f"{' on ' + when if when else ''} after it was made")


def changes(marker_path, record, inputs_now=None):
    """The recorded inputs of a marker that differ now: from ``inputs_now`` (an :class:`Inputs` the caller just
    computed) for names it has, else recomputed from the recorded paths. Inputs that exist on only one side
    (a marker written before an input was recorded) are not compared."""
    marker_folder = Path(marker_path).parent
    now = inputs_now.record(marker_folder) if inputs_now is not None else {}
    found = []
    for name, entry in sorted((record or {}).items()):
        if inputs_now is not None:
            if name not in now:
                continue
            fp, path = now[name]["fingerprint"], Path(now[name]["path"])
        else:
            fp, path = entry_now(entry, marker_folder)
        if fp != entry["fingerprint"]:
            found.append(Change(marker_folder, name, entry, path, fp))
    return found


def read_marker(path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def upstream_problems(inputs, _seen=None):
    """The stale outputs upstream of ``inputs`` (an :class:`Inputs` or a recorded dict): for every marker input,
    the inputs that marker recorded are compared with what is there now, and so on up the chain. Returns a list of
    ``(marker path, [Change])``, nearest first; empty when the whole chain is current."""
    seen = set() if _seen is None else _seen
    problems = []
    entries = inputs.entries if isinstance(inputs, Inputs) else (inputs or {})
    for entry in entries.values():
        if entry.get("kind") != "marker":
            continue
        path = Path(entry["path"])
        key = str(path.resolve()) if path.exists() else str(path)
        if key in seen:
            continue
        seen.add(key)
        stored = read_marker(path)
        if not stored or not stored.get("inputs"):
            continue  # a marker written before lineage was recorded: nothing to compare
        found = changes(path, stored["inputs"])
        if found:
            problems.append((path, found))
        # the chain goes on through the upstream marker's own marker inputs, at their current place
        upstream = {n: {**e, "path": str(entry_path(e, path.parent))} for n, e in stored["inputs"].items()}
        problems += upstream_problems(upstream, seen)
    return problems
