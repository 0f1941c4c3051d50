"""Two runs on the same outputs: the second is told who holds them (stage 4), or waits its turn (EPITOME cache);
a holder killed with SIGKILL leaves no stale lock."""
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from fault_helpers import run_module
from test_training_kill import _args

from rellm.utils.lock import LockHeldError, OutputLock

REPO = Path(__file__).resolve().parents[2]


def test_a_second_training_run_on_the_same_folder_is_refused_naming_the_holder(toy_recipe, tmp_path):
    out = tmp_path / "exp" / "rellm" / "toy" / "seed1"
    with OutputLock(out, "train"):
        proc = run_module("rellm.bin.train", _args(toy_recipe, out))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert re.match(rf"ERROR: the experiment {re.escape(str(out))} is being written by pid {os.getpid()} on "
                    rf"{re.escape(socket.gethostname())} since \d{{4}}-\d\d-\d\dT[\d:]+ \(.*pytest.*\); wait for it", last), last
    assert not (out / "hyperparams.yaml").exists()  # the refused run wrote nothing


def test_the_lock_of_a_sigkilled_holder_is_free_and_a_waiter_gets_it(tmp_path):
    code = ("import os, signal, sys; from rellm.utils.lock import OutputLock; "
            f"OutputLock({str(tmp_path)!r}, 'x').acquire(); print('held', flush=True); sys.stdin.readline(); "
            "os.kill(os.getpid(), signal.SIGKILL)")
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert child.stdout.readline().strip() == "held"
    with pytest.raises(LockHeldError, match=rf"pid {child.pid} on .* \(-c\)"):
        OutputLock(tmp_path, "x").acquire()
    child.stdin.write("\n")
    child.stdin.flush()
    assert child.wait(30) == -9
    with OutputLock(tmp_path, "x", wait=True, timeout=10):  # no stale lock
        assert str(os.getpid()) in (tmp_path / ".lock.x").read_text()


def test_epitome_training_waits_for_the_cache_lock(tmp_path, monkeypatch, caplog):
    """A second EPITOME training into the same cache waits for the first to finish, then goes on."""
    import logging
    import threading
    import time

    from rellm.scoring.epitome import training as T
    from rellm.scoring.epitome.model_cache import epitome_cache_dir

    root = epitome_cache_dir(tmp_path, "enc", None)
    calls = []
    monkeypatch.setattr(T, "_train_all_locked", lambda *a: calls.append(time.time()) or {"ER": {}})
    holder = OutputLock(root, "train").acquire()  # "another run" (flock: a second open file in this process)
    released = []
    threading.Timer(1.0, lambda: (released.append(time.time()), holder.release())).start()
    with caplog.at_level(logging.INFO, logger="rellm.utils.lock"):
        assert T.train_all({"encoder": "enc", "max_len": 8, "device": "cpu"}, tmp_path, tmp_path) == {"ER": {}}
    assert released and calls and calls[0] >= released[0]  # it trained only after the holder let go
    assert f"waiting for the EPITOME cache {root}: it is being written by pid {os.getpid()}" in caplog.text
