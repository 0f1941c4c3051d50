"""Helpers of the fault suite: run a stage in a child process with RELLM_FAULT or a file-size limit."""
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_module(module, args, fault=None, fsize_limit=None, timeout=600, cwd=REPO):
    """``python -m module args`` in a child process; ``fault`` sets RELLM_FAULT, ``fsize_limit`` (bytes) sets
    RLIMIT_FSIZE in the child (a full disk: a write past it fails with EFBIG)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    env.pop("RELLM_FAULT", None)
    if fault:
        env["RELLM_FAULT"] = fault

    def limit():
        if fsize_limit is not None:
            import resource
            import signal

            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG error instead of a signal
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize_limit, fsize_limit))

    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, preexec_fn=limit, check=False)
