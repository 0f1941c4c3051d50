"""Fixtures of the Python API tests: spoken utterances (eSpeak NG, as ``mini say`` makes them) and toy trained
models over tiny random Whisper / emotion encoder / LLM folders, saved as stage 4 saves them."""
from pathlib import Path

import pytest
from api_helpers import SENTENCES, make_bases, make_experiment

from rellm.testing.prerequisites import require_module
from rellm.testing.pretrained_models import smollm2_dir, whisper_tiny_dir  # noqa: F401  (session fixtures)


@pytest.fixture(scope="session")
def speech_wavs(tmp_path_factory):
    """Three short utterances of real (synthetic) speech, 16 kHz mono wav."""
    require_module("espeakng_loader")
    from rellm.data.corpora.mini import say

    folder = tmp_path_factory.mktemp("speech")
    return [Path(say(text, style, folder / f"{style}.wav")["path"]) for text, style in SENTENCES]


@pytest.fixture(scope="session")
def bases(tmp_path_factory):
    return make_bases(tmp_path_factory.mktemp("bases"))


@pytest.fixture(scope="session")
def rellm_exp(tmp_path_factory, bases):
    """A toy RE-LLM experiment (random 32-d Whisper, emotion encoder and LLM)."""
    llm, whisper, emotion = bases
    return make_experiment(tmp_path_factory.mktemp("recipe"), llm, whisper, emotion)


@pytest.fixture(scope="session")
def responder(rellm_exp):
    from rellm import Responder

    return Responder.from_pretrained(rellm_exp, device="cpu")
