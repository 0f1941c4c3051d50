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
    with OutputLock(tmp_path, "x", wait=True, timeout=10) as lock:  # no stale lock
        assert str(os.getpid()) in (tmp_path / ".lock.x").read_text()
    assert lock.fd is None and (tmp_path / ".lock.x").read_text() == ""  # a clean release leaves no holder


def test_a_lock_left_by_a_killed_holder_is_taken_over_with_a_message(tmp_path, caplog):
    code = ("import os, signal; from rellm.utils.lock import OutputLock; "
            f"OutputLock({str(tmp_path)!r}, 'x').acquire(); os.kill(os.getpid(), signal.SIGKILL)")
    child = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(REPO)), check=False)
    assert child.returncode == -9
    import logging

    with caplog.at_level(logging.WARNING, logger="rellm.utils.lock"), OutputLock(tmp_path, "x"):
        pass
    assert re.search(r"taking over the lock .*\.lock\.x of pid \d+ on .* which ended without releasing it",
                     caplog.text), caplog.text


def _runner(log, *command):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, str(REPO / "tools" / "run.py"), str(log), *command], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_second_run_of_a_job_is_refused_before_it_touches_the_running_jobs_log(tmp_path):
    """The job runner locks each task's log before opening it and hands the lock to the task: a second run of the
    same job (the same stage started twice) is refused naming the holder, and the first job's log stays whole."""
    log = tmp_path / "log" / "extract.1.log"
    ready = tmp_path / "ready"
    task = ("import pathlib, sys, time; print('first run at work', flush=True); "
            f"pathlib.Path({str(ready)!r}).touch(); time.sleep(8); print('first run done')")
    first = _runner(log, sys.executable, "-c", task)
    for _ in range(300):
        if ready.exists():
            break
        import time

        time.sleep(0.1)
    second = _runner(log, sys.executable, "-c", "print('second run')")
    out, err = second.communicate(timeout=60)
    assert second.returncode == 75, out + err
    assert re.search(rf"ERROR: the job log {re.escape(str(log))} is being written by pid \d+ on .* since .*-c",
                     err), err
    assert "first run at work" in log.read_text() and "second run" not in log.read_text()
    assert first.wait(60) == 0
    text = log.read_text()
    assert "first run done" in text and text.rstrip().splitlines()[-1].startswith("# Ended (code 0)")


def test_a_second_process_on_the_same_shard_is_refused_before_it_logs(tmp_path):
    from rellm.utils.sharded_stage import ShardedStage

    stage = ShardedStage("infer", tmp_path / "out", 2)
    with stage.locked(2):
        proc = run_module("rellm.bin.infer", [REPO / "egs" / "mini" / "conf" / "infer.yaml", "--system", "text_only",
                                              "--manifest", REPO / "egs" / "mini" / "conf" / "infer.yaml",
                                              "--output_dir", tmp_path / "out", "--model_dir", tmp_path, "--feats_dir", tmp_path,
                                              "--shard", "2", "--num_shards", "2"])
        assert proc.returncode == 1 and f"shard 2 of 2 of {tmp_path / 'out'} is being written by pid {os.getpid()}" \
            in proc.stderr, proc.stderr[-2000:]
        assert not (tmp_path / "out" / "log").exists()  # the refused run opened no log
        # the merge waits for no shard: it is refused too
        with pytest.raises(LockHeldError, match="shard 2 of 2"), stage.locked(None):
            pass


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


def test_a_second_scoring_of_a_test_set_is_refused_before_it_touches_the_running_ones_log(tmp_path):
    """Stage 6 locks its scores folder before opening score.log: a second scoring of the same test set (run.sh
    started twice) stops naming the holder, and the running scoring's log stays as it is."""
    out = tmp_path / "exp" / "scores" / "s" / "seed1" / "test"
    out.mkdir(parents=True)
    (out / "score.log").write_text("the running scoring's lines\n")
    with OutputLock(out, "score"):
        proc = run_module("rellm.bin.score", [REPO / "egs" / "mini" / "conf" / "score.yaml", "--systems", "text_only",
                                              "--exp_root", tmp_path / "exp", "--split", "s", "--seed", "1",
                                              "--test_set", "test", "--output_dir", out])
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert re.match(rf"ERROR: the scores folder {re.escape(str(out))} is being written by pid {os.getpid()} on "
                    rf"{re.escape(socket.gethostname())} since .*; wait for it", last), last
    assert (out / "score.log").read_text() == "the running scoring's lines\n"
    assert sorted(p.name for p in out.iterdir()) == [".lock.score", "score.log"]  # nothing else written
    # once the holder is gone the scoring runs (and stops at its first real problem: no system has outputs)
    proc = run_module("rellm.bin.score", [REPO / "egs" / "mini" / "conf" / "score.yaml", "--systems", "text_only",
                                          "--exp_root", tmp_path / "exp", "--split", "s", "--seed", "1",
                                          "--test_set", "test", "--output_dir", out])
    assert proc.returncode == 1 and "no system has outputs for test set test" in proc.stderr, proc.stderr[-2000:]
    assert "no outputs for text_only" in (out / "score.log").read_text()
