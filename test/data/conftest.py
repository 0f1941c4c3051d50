"""Module-scoped corpus fixtures for the stage-1 tests; the builders live in corpus_fixtures.py."""

import pytest
from corpus_fixtures import build_esd, build_iemocap, build_msp


@pytest.fixture(scope="module")
def iemocap_root(tmp_path_factory):
    """Built once per test module: tests must not modify it (build their own copy to do so)."""
    return build_iemocap(tmp_path_factory.mktemp("iemocap") / "IEMOCAP_full_release")


@pytest.fixture(scope="module")
def esd_root(tmp_path_factory):
    """Built once per test module: tests must not modify it (build their own copy to do so)."""
    return build_esd(tmp_path_factory.mktemp("esd") / "Emotion Speech Dataset")


@pytest.fixture(scope="module")
def msp_root(tmp_path_factory):
    """Built once per test module: tests must not modify it (build their own copy to do so)."""
    return build_msp(tmp_path_factory.mktemp("msp") / "MSP-PODCAST-Publish-1.12")
