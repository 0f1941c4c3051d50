"""Fault-injection suite: real processes, killed with SIGKILL at chosen points (``RELLM_FAULT``,
rellm/utils/faults.py), fed bad files, or limited in the bytes they may write; then re-run."""
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items):
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.faults)
