"""Fixtures of the scoring tests (helpers in scoring_fixtures.py)."""
import pytest
import torch
from scoring_fixtures import TINY_EPITOME_CONF, tiny_encoder, write_epitome_csvs


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    # tiny models: a second thread only adds contention on the shared 2-core machine
    torch.set_num_threads(1)


@pytest.fixture
def tiny_text_encoder():
    return tiny_encoder()


@pytest.fixture
def epitome_csv_dir(tmp_path):
    return write_epitome_csvs(tmp_path / "epitome_csvs")


@pytest.fixture
def tiny_epitome_conf():
    return dict(TINY_EPITOME_CONF)
