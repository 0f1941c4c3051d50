"""Exclusive locks on output folders (a recipe's stage outputs, the shared EPITOME cache).

``OutputLock(folder, name)`` takes an ``fcntl.flock`` on ``<folder>/.lock.<name>`` and writes who holds
it (pid, host, command, since when) into that file. The kernel drops the lock when the holder dies,
even by SIGKILL, so a killed run never leaves a stale lock: the next run takes it over and says whose it was
(the holder's record is still in the file: a holder that finished cleanly empties it). A second
process either waits (``wait=True``, logging who it waits for) or stops at once with a one-line
error naming the holder. (flock works on local disks and on NFSv4; on other network file systems
run one recipe per folder.)
"""
import contextlib
import datetime
import fcntl
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path

from rellm.utils.stage import UserError

logger = logging.getLogger(__name__)


class LockHeldError(UserError):
    """Another process holds the lock."""


def _holder_info(fd):
    try:
        info = json.loads(os.pread(fd, 65536, 0).decode("utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _pid_alive(pid):
    try:
        os.kill(int(pid), 0)
    except (TypeError, ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _holder(fd):
    info = _holder_info(fd)
    if not info:
        return "another process (it has not written its name yet)"
    return (f"pid {info.get('pid')} on {info.get('host')} since {info.get('since')} "
            f"({info.get('command', '?')})")


class OutputLock:
    """``with OutputLock(folder, "train"): ...`` -- one process at a time writes ``folder``."""

    def __init__(self, folder, name, wait=False, poll_seconds=2.0, timeout=None, what=None):
        self.path = Path(folder) / f".lock.{name}"
        self.wait, self.poll_seconds, self.timeout = wait, poll_seconds, timeout
        self.what = what or str(folder)
        self._fd = None

    def acquire(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        t0, announced = time.time(), False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _holder(fd)
                if not self.wait or (self.timeout is not None and time.time() - t0 > self.timeout):
                    os.close(fd)
                    raise LockHeldError(
                        f"{self.what} is being written by {holder}; wait for it to finish (or stop it), "
                        f"then re-run: finished work is kept. Lock file: {self.path}") from None
                if not announced:
                    logger.info("waiting for %s: it is being written by %s", self.what, holder)
                    announced = True
                time.sleep(self.poll_seconds)
        previous = _holder_info(fd)
        if previous:  # the last holder did not release it: it was killed (a clean release empties the file)
            alive = previous.get("host") == socket.gethostname() and _pid_alive(previous.get("pid"))
            logger.warning("taking over the lock %s of pid %s on %s (%s), which %s", self.path, previous.get("pid"),
                           previous.get("host"), previous.get("command", "?"),
                           "still runs but no longer holds it" if alive else "ended without releasing it")
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv)[:500],
                "since": datetime.datetime.now().isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode("utf-8"), 0)
        self._fd = fd
        return self

    def update(self, **fields):
        """Add to the holder's record (e.g. the pid of the task a job runner started under this lock)."""
        info = {**_holder_info(self._fd), **fields}
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, json.dumps(info).encode("utf-8"), 0)

    @property
    def fd(self):
        """The locked descriptor: a child process given it (``pass_fds``) keeps the lock until it ends too."""
        return self._fd

    def release(self):
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
