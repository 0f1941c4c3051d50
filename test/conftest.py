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


@pytest.fixture(scope="session")
def toy_recipe(tmp_path_factory):
    """Stage 1-3 outputs (8 train + 8 valid utterances, random features) and a toy LLM folder
    (test/training, test/faults)."""
    from rellm.testing.toy_models import save_toy_llm
    from rellm.testing.toy_recipe import write_toy_recipe_data

    root = tmp_path_factory.mktemp("toy_recipe")
    write_toy_recipe_data(root, num_utts=8, speech_dim=24, emotion_dim=8)
    save_toy_llm(root / "llm")
    return root
