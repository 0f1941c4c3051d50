"""The web demo in a real browser: ``rellm-demo`` on toy experiments, driven by headless Chromium.

Two spoken turns (made by the mini corpus's ``say``), the first uploaded, the second recorded through the
microphone (Chromium's fake capture device playing a wav): each shows an emotion, the A/V/D values and replies,
and the second is answered with the first as its history (the debug panel lists the turn it was given, and the
prompt the LLM read holds the first turn's words and reply). A silent recording gets no emotion and no reply, a
31 s file a one-line error, and "New conversation" starts again without history. Marked ``e2e`` (``make test-e2e``; about a minute).
Without Chromium, chromedriver, selenium or Gradio the test is skipped, except under CI (``CI=true``), where it
fails: tools/install_chromium.sh and ``make install`` provide them.
"""
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from rellm.data.emotions import EMOTIONS

pytestmark = pytest.mark.e2e

SENTENCES = {"sad": "I lost my keys again today.", "happy": "We finally won the match after all those weeks!"}


def _missing(message):
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"CI: {message}")
    pytest.skip(message)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """``(url, wavs, log)``: rellm-demo serving the toy RE-LLM, with its BLSP-Emo sibling and text-only."""
    import importlib.util

    from rellm.demo.browser import BrowserMissing, find_chromium, running_demo

    try:
        find_chromium()
    except BrowserMissing as err:
        _missing(str(err))
    if importlib.util.find_spec("gradio") is None:
        _missing("gradio is not installed: pip install 'rellm[demo]' (make install includes it)")
    from rellm.testing.toy_demo import write_toy_experiments

    root = tmp_path_factory.mktemp("demo")
    folders = write_toy_experiments(root)
    wavs = {}
    for style, text in SENTENCES.items():
        wavs[style] = root / f"{style}.wav"
        subprocess.run([sys.executable, "-m", "rellm.data.corpora.mini", "say", text, "--style", style,
                        "--out", str(wavs[style])], check=True, capture_output=True)
    wavs["silence"] = root / "silence.wav"
    sf.write(wavs["silence"], np.zeros(24000, dtype=np.float32), 16000)
    wavs["long"] = root / "long.wav"
    sf.write(wavs["long"], 0.1 * np.sin(np.arange(31 * 16000) / 16000 * 2 * np.pi * 220).astype(np.float32), 16000)
    log = root / "demo.log"
    # the sibling exp/blsp_emo/official/seed1 is found from the RE-LLM folder
    with running_demo([folders["rellm"], "--compare", "blsp_emo,text_only", "--max_new_tokens", "12",
                       "--device", "cpu"], log, cwd=root, env={"OMP_NUM_THREADS": "2"}) as url:
        yield url, wavs, log


def test_two_spoken_turns_with_history_no_speech_and_a_new_conversation(demo):
    from rellm.demo.browser import DemoPage, headless_chromium

    url, wavs, log = demo
    with headless_chromium(microphone=wavs["happy"]) as web:
        page = DemoPage(web, url)
        assert "Talk to RE-LLM" in web.find_element("css selector", "body").text

        # turn 1: an emotion with its five probabilities, A/V/D, and the three systems' replies
        page.upload(wavs["sad"])
        page.send()
        shown, bars = page.emotion()
        assert set(bars) == set(EMOTIONS) and shown == max(bars, key=bars.get), (shown, bars)
        assert abs(sum(bars.values()) - 100) <= 3, bars
        assert page.status() == f"Turn 1: heard as {shown}; the model was given no earlier turns."
        avd = page.avd()
        assert "model (A/V/D head)" in avd and "emotion encoder" in avd and "arousal" in avd, avd
        first = {"reply": page.reply(), "transcript": page.textbox("demo-transcript")}
        assert first["reply"].strip() and page.reply("blsp_emo").strip() and page.reply("text_only").strip()
        assert "keys" in first["transcript"].lower(), first  # Whisper tiny.en heard the sentence
        chat = page.chat()
        assert [role for role, _ in chat] == ["user", "assistant"], chat
        assert chat[0][1].startswith(first["transcript"]) and f"heard as {shown}" in chat[0][1]
        assert chat[1][1] == first["reply"].strip()
        debug = page.debug()
        assert (debug["turn"], debug["history_turns_given"], debug["history_given"]) == (1, 0, [])

        # turn 2, through the microphone: given turn 1 as history
        page.record(2.5)
        page.send()
        assert page.status().startswith("Turn 2: heard as ")
        assert page.status().endswith("the model was given the 1 earlier turn as history.")
        assert page.reply().strip() and page.reply("blsp_emo").strip()
        chat2 = page.chat()
        assert [role for role, _ in chat2] == ["user", "assistant"] * 2 and chat2[:2] == chat, chat2
        debug = page.debug()
        assert (debug["turn"], debug["history_turns_given"]) == (2, 1)
        assert debug["history_given"] == [{"user": first["transcript"], "assistant": first["reply"]}]
        # what the LLM read: the first turn's words and reply in the chat template, then this turn's speech
        page.web.find_element("id", "demo-show-prompt").click()
        page.wait.until(lambda w: "<speech:" in page.textbox("demo-prompt"))
        prompt = page.textbox("demo-prompt")
        assert prompt.count("<|im_start|>user") == 2 and prompt.count("<|im_start|>assistant") == 2, prompt
        assert prompt.index(first["transcript"]) < prompt.index(first["reply"].strip()) < prompt.index("<speech:")

        # no speech: said plainly, no emotion, no reply, the conversation unchanged
        page.upload(wavs["silence"])
        page.send()
        assert page.status().startswith("No speech was detected in this recording: no emotion and no reply.")
        assert page.emotion()[1] == {} and page.reply() == "" and page.reply("blsp_emo") == ""
        assert page.chat() == chat2

        # a file over 30 s: refused with what to do, the conversation unchanged
        page.upload(wavs["long"])
        with pytest.raises(RuntimeError, match=r"This recording could not be answered: long.wav is 31.0 s long; "
                                               r"the limit is 30 s"):
            page.send()
        assert page.chat() == chat2
        page.dismiss_errors()

        # a new conversation: the chat is emptied and the next turn is given no history
        page.new_conversation()
        assert page.status() == "Record or upload what you want to say, then press Send."
        page.upload(wavs["happy"])
        page.send()
        assert page.status().startswith("Turn 1: heard as ") and page.status().endswith("no earlier turns.")
        assert len(page.chat()) == 2 and page.debug()["history_given"] == []
        assert page.errors() == []
    assert "Traceback" not in log.read_text(encoding="utf-8")  # the refused file is logged as one line
