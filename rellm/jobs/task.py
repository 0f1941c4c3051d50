"""Running one task of a job array and reading back how it ended.

Every backend runs a task the same way, so every log looks the same::

    # python3 -m rellm.bin.extract conf/extract.yaml --shard 2 --num_shards 4
    # Started at 2026-11-26 17:55:01 on node12 (task 2 of JOB=1:4)
    ...everything the command printed (stdout and stderr)...
    # Ended (code 0) at 2026-11-26 17:55:04, elapsed time 3.2s

The last line is the record of the exit status: a log without it belongs to a
task that never finished (killed by the scheduler, node failure, still running).

The command is an argument list executed without a shell, so paths and
utterance ids with spaces or ``$;|*`` reach it unchanged.

One task at a time writes a log: the runner locks ``<logdir>/.lock.<log name>`` before it opens the log and
hands the lock to the task (which keeps it even if the runner is killed), so a second run of the same stage is
refused, naming the holder, before it touches the running task's log (:func:`refuse_logs_in_use`).

``python -m rellm.jobs.task SPEC.json TASK_ID`` runs task ``TASK_ID`` of a job
array described by a JSON spec (used inside Slurm batch scripts, where the
command must not pass through the batch script's shell).
"""
import datetime
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from rellm.utils.lock import LockHeldError, OutputLock

LOG_IN_USE = 75  # EX_TEMPFAIL: another run's task still writes this log
_ENDED = re.compile(r"^# Ended \(code (-?\d+)\) at ")


def substitute(text, var, task_id):
    """Replace every occurrence of the array variable (e.g. ``JOB``) by the task number."""
    return text.replace(var, str(task_id)) if var else text


def task_command(command, var, task_id):
    return [substitute(arg, var, task_id) for arg in command]


def _now():
    return datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")


def _exit_code(returncode):
    """A process killed by signal N reports -N; logs use the shell's 128+N so the code stays positive."""
    return 128 - returncode if returncode < 0 else returncode


def log_lock(log_path):
    log_path = Path(log_path)
    return OutputLock(log_path.parent, log_path.name, what=f"the job log {log_path}")


def refuse_logs_in_use(log_paths):
    """Stop (``LockHeldError``, naming the holder: pid, host, command) when a task of another run still writes one
    of these logs; called before a runner removes or truncates any of them."""
    for log_path in log_paths:
        lock = log_lock(log_path)
        lock.acquire()
        lock.release()


def run_task(command, log_path, env=None, description=""):
    """Run ``command`` (a list) with stdout+stderr into ``log_path``; return its exit code.

    The log is replaced, never appended: a re-run of a task gives a clean log. It is locked first
    (:func:`log_lock`): when another run's task holds it, nothing is written and the code is ``LOG_IN_USE``.
    ``env`` holds extra environment variables for the command.
    """
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    lock = log_lock(log_path)
    try:
        lock.acquire()
    except LockHeldError as err:
        print(f"ERROR: {err}", file=sys.stderr, flush=True)
        return LOG_IN_USE
    try:
        return _run_locked(command, log_path, env, description, lock)
    finally:
        lock.release()


def _run_locked(command, log_path, env, description, lock):
    task_env = dict(os.environ, **(env or {}))
    start = time.monotonic()
    with open(log_path, "w", encoding="utf-8", errors="replace") as log:
        log.write(f"# {shlex.join(command)}\n")
        log.write(f"# Started at {_now()} on {socket.gethostname()}{' (' + description + ')' if description else ''}\n")
        log.flush()
        try:
            # the task inherits the lock: it stays held while the task runs, even if this runner is killed
            proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=task_env,
                                    pass_fds=(lock.fd,))
        except OSError as err:  # command not found, not executable: the log says so
            log.write(f"ERROR: cannot start {command[0]!r}: {err}\n")
            code = 127 if isinstance(err, FileNotFoundError) else 126
        else:
            lock.update(pid=proc.pid, command=shlex.join(command)[:500])
            try:
                code = _exit_code(proc.wait())
            except BaseException:  # Ctrl-C or the runner being killed: do not leave the task behind
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                log.write(f"# Ended (code {128 + signal.SIGINT}) at {_now()}, interrupted by the runner\n")
                raise
        elapsed = time.monotonic() - start
        log.write(f"# Ended (code {code}) at {_now()}, elapsed time {elapsed:.1f}s\n")
    return code


def read_exit_code(log_path):
    """The exit code recorded at the end of a task log, or ``None`` when the task never finished."""
    log_path = Path(log_path)
    if not log_path.is_file():
        return None
    with open(log_path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 4096))
        lines = f.read().decode("utf-8", errors="replace").splitlines()
    for line in reversed(lines):
        if line.strip():
            match = _ENDED.match(line)
            return int(match.group(1)) if match else None
    return None


def tail(path, num_lines=20):
    """The last ``num_lines`` lines of a text file (empty string when it does not exist)."""
    path = Path(path)
    if not path.is_file():
        return ""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 64 * 1024))
        lines = f.read().decode("utf-8", errors="replace").splitlines()
    return "\n".join(lines[-num_lines:])


def main(argv=None):
    """``python -m rellm.jobs.task SPEC.json TASK_ID``: run one task of an array spec."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m rellm.jobs.task SPEC.json TASK_ID", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    task_id = int(argv[1])
    var = spec["var"]
    log_path = substitute(spec["log"], var, task_id)
    description = f"task {task_id} of {var}={spec['start']}:{spec['end']}" if var else ""
    slurm_id = os.environ.get("SLURM_ARRAY_JOB_ID")
    if slurm_id:
        description += f", Slurm job {slurm_id}_{task_id}"
    return run_task(task_command(spec["command"], var, task_id), log_path, env=spec.get("env"), description=description)


if __name__ == "__main__":
    sys.exit(main())
