"""Fault-injection suite: real processes, killed with SIGKILL at chosen points (``RELLM_FAULT``,
rellm/utils/faults.py), fed bad files, or limited in the bytes they may write; then re-run."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rellm.training.toy import save_toy_llm, write_toy_recipe_data

REPO = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items):
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.faults)


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


@pytest.fixture(scope="session")
def toy_recipe(tmp_path_factory):
    """Stage 1-3 outputs (8 train + 8 valid utterances, random features) and a toy LLM folder."""
    root = tmp_path_factory.mktemp("toy_recipe")
    write_toy_recipe_data(root, num_utts=8, speech_dim=24, emotion_dim=8)
    save_toy_llm(root / "llm")
    return root
