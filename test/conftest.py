"""Fixtures shared by the whole test suite. Marks (slow, slurm, gpu, e2e) are declared in pyproject.toml."""
import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = REPO_ROOT / "tools" / "venv" / "bin"


@pytest.fixture(scope="session")
def repo_root():
    return REPO_ROOT


@pytest.fixture
def tool_env():
    """Environment for running the repository's scripts: the test's Python first on PATH, one thread."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    env["RELLM_CMD_BACKEND"] = "local"
    return env
