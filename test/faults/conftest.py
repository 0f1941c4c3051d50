"""Fault-injection suite: real processes, killed with SIGKILL at chosen points (``RELLM_FAULT``,
rellm/utils/faults.py), fed bad files, or limited in the bytes they may write; then re-run."""
from pathlib import Path

import pytest

from rellm.training.toy import save_toy_llm, write_toy_recipe_data

REPO = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items):
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.faults)


@pytest.fixture(scope="session")
def toy_recipe(tmp_path_factory):
    """Stage 1-3 outputs (8 train + 8 valid utterances, random features) and a toy LLM folder."""
    root = tmp_path_factory.mktemp("toy_recipe")
    write_toy_recipe_data(root, num_utts=8, speech_dim=24, emotion_dim=8)
    save_toy_llm(root / "llm")
    return root
