"""Atomic file writes and JSON/JSONL helpers.

Every stage writes through these so that a crash never leaves a half-written
file under its final name: write to a temporary file in the same folder, fsync,
then rename (atomic on POSIX within one file system).
"""
import contextlib
import json
import os
import tempfile
from pathlib import Path

from rellm.utils.faults import fault_point


def fsync_dir(folder):
    """Make a rename in ``folder`` durable: without it a power cut can undo a rename that already happened."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems do not support fsync on a folder; the rename itself is still atomic
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it to ``path`` on success.

    On an exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    # mkstemp creates 0600; give the file the mode a plain open() would (umask applied),
    # so colleagues sharing an experiment folder on a cluster can read it.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        fault_point(f"write/{path.name}")  # test hook: RELLM_FAULT (rellm/utils/faults.py)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_folder(path):
    """Yield an empty staging folder beside ``path``; on success it replaces ``path`` as one unit.

    A reader sees the old folder or the new one, never a mix of their files: the old folder (if any) is renamed
    aside, the staging folder renamed into place, the parent folder fsynced, then the old one removed. A crash
    leaves the old folder or the new one under ``path`` (plus a hidden leftover that the next write removes).
    """
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for leftover in path.parent.glob(f".{path.name}.staging-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    for leftover in path.parent.glob(f".{path.name}.old-*"):
        if not path.exists():  # killed between the two renames: the old folder is the latest complete one
            os.replace(leftover, path)
        else:
            shutil.rmtree(leftover, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.staging-", dir=path.parent))
    os.chmod(staging, 0o777 & ~_umask())
    try:
        yield staging
        for f in staging.iterdir():
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        fsync_dir(staging)
        old = None
        if path.exists():
            old = path.parent / f".{path.name}.old-{os.getpid()}"
            os.replace(path, old)
        fault_point(f"folder/{path.name}")  # test hook: RELLM_FAULT (rellm/utils/faults.py)
        os.replace(staging, path)
        fsync_dir(path.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _umask():
    umask = os.umask(0)
    os.umask(umask)
    return umask


def atomic_write_text(path, text, encoding="utf-8"):
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding=encoding)


def atomic_write_json(path, obj, indent=2):
    atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False, sort_keys=False) + "\n")


def write_json(path, obj, indent=2):
    """Plain write, for files inside a staging folder that is renamed into place as a whole (``atomic_folder``)."""
    Path(path).write_text(json.dumps(obj, indent=indent, ensure_ascii=False) + "\n", encoding="utf-8")


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_jsonl(path, records):
    """Atomically write an iterable of dicts, one JSON object per line."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(rec, ensure_ascii=False) + "\n" for rec in records)


def read_jsonl(path):
    """Read a JSONL file; a malformed line is an error naming the file and line."""
    records = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({err})") from err
    return records
