"""`python -m rellm.data.corpora.mini say`: one sentence of the user's own in a mini style."""
import subprocess
import sys

import pytest
import soundfile as sf

from rellm.data.corpora import espeak_synthesis, mini
from rellm.testing.prerequisites import require_module

require_module("espeakng_loader")

TEXT = "Can you set a timer for twenty minutes?"


def _say(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "rellm.data.corpora.mini", "say", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)


def test_say_writes_16k_speech_and_sad_is_slower_than_happy(tmp_path):
    result = _say(tmp_path, TEXT, "--style", "sad", "--out", "out/sad.wav")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"wrote {tmp_path / 'out' / 'sad.wav'} (") and "sad, voice en-us" in result.stdout
    info = sf.info(str(tmp_path / "out" / "sad.wav"))
    assert info.samplerate == 16000 and info.channels == 1 and info.subtype == "PCM_16"
    sad_seconds = info.frames / info.samplerate
    assert 1.5 < sad_seconds < 8.0  # eight words at 125 words/min with pauses: about 3-4 s
    happy = mini.say(TEXT, "happy", tmp_path / "happy.wav", voice="en-us+f3")
    assert happy["seconds"] == pytest.approx(sf.info(happy["path"]).frames / 16000, abs=1e-3)
    assert sad_seconds > 1.3 * happy["seconds"]  # the sad style is slow, with gaps between words
    assert happy["arousal"] > 0.5 and happy["params"] == mini.STYLES["happy"]


def test_say_is_deterministic_and_worker_entry_point_still_works(tmp_path):
    # the corpus path (plan -> JOBS.json worker in a fresh process) and say() agree sample for sample
    a = mini.say(TEXT, "angry", tmp_path / "a.wav")
    job = ("b", "b.wav", TEXT, "en-us", dict(mini.STYLES["angry"]), 0)
    info, _ = espeak_synthesis.run_in_fresh_process([job], tmp_path)
    assert info["b"][0] == sf.info(a["path"]).frames
    assert (sf.read(a["path"])[0] == sf.read(str(tmp_path / "b.wav"))[0]).all()


@pytest.mark.parametrize("args, message", [
    (["hi", "--style", "bored", "--out", "x.wav"], "invalid choice: 'bored'"),
    (["hi", "--style", "sad", "--out", "x.mp3"], "ERROR: --out must name a .wav file"),
    (["  ", "--style", "sad", "--out", "x.wav"], "ERROR: give the text to say"),
])
def test_say_user_errors(tmp_path, args, message):
    result = _say(tmp_path, *args)
    assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr
