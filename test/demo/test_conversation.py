"""The demo's conversation logic: history passed on, no-speech turns, baselines, what the page shows."""
import numpy as np
import pytest
import soundfile as sf
from fake_responder import FakeResponder

from rellm.data.emotions import EMOTIONS
from rellm.demo.conversation import (
    Conversation,
    Decoding,
    Systems,
    avd_markdown,
    chat_messages,
    debug_info,
    probabilities,
    status_markdown,
)


@pytest.fixture
def wavs(tmp_path):
    def make(name, amplitude):
        t = np.arange(16000) / 16000
        sf.write(tmp_path / name, (amplitude * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
        return str(tmp_path / name)
    return {"sad": make("sad.wav", 0.35), "happy": make("happy.wav", 0.15), "silent": make("silent.wav", 0.0)}


def test_each_turn_gets_the_earlier_turns_as_history(wavs):
    main = FakeResponder()
    conv = Conversation()
    first = conv.take_turn(Systems(main), wavs["sad"])
    second = conv.take_turn(Systems(main), wavs["happy"])
    assert [c["history"] for c in main.calls] == [[], [first.reply]]
    assert [c["with_transcript"] for c in main.calls] == [True, True]  # the next turn's history needs the words
    assert (first.turn.number, first.turn.history_given) == (1, 0)
    assert (second.turn.number, second.turn.history_given) == (2, 1)
    assert second.reply.response == "rellm turn 2 after 1 earlier"
    assert conv.history() == [first.reply, second.reply] and conv.history(1) == [first.reply]
    assert status_markdown(second) == "Turn 2: heard as **happy**; the model was given the 1 earlier turn as history."
    assert conv.last_prompt(Systems(main)) == ("user: sentence 1\nassistant: rellm turn 1 after 0 earlier\n"
                                               "user: <speech>\nassistant:")


def test_no_speech_gives_no_emotion_no_reply_and_leaves_the_conversation(wavs):
    main, blsp = FakeResponder(), FakeResponder("blsp_emo")
    systems = Systems(main, {"blsp_emo": blsp, "text_only": None})
    conv = Conversation()
    conv.take_turn(systems, wavs["sad"])
    outcome = conv.take_turn(systems, wavs["silent"])
    assert outcome.turn is None and len(conv) == 1
    assert len(blsp.calls) == 1  # the baseline is not asked about a recording without speech
    assert probabilities(outcome.reply) == {}
    assert avd_markdown(outcome.reply) == "No speech, so no arousal, valence or dominance."
    assert status_markdown(outcome).startswith("**No speech was detected** in this recording: no emotion and no reply.")
    assert debug_info(conv, outcome) == {"turns": 1, "no_speech": True, "notes": ["no speech detected"]}
    # the next turn with speech is turn 2 and is given only the one turn with speech
    after = conv.take_turn(systems, wavs["happy"])
    assert (after.turn.number, after.turn.history_given) == (2, 1)
    assert main.calls[-1]["history"] == [conv.turns[0].reply]


def test_baselines_answer_the_same_conversation(wavs):
    main, blsp = FakeResponder(), FakeResponder("blsp_emo", with_avd=False)
    systems = Systems(main, {"blsp_emo": blsp, "text_only": None})
    conv = Conversation()
    conv.take_turn(systems, wavs["sad"])
    outcome = conv.take_turn(systems, wavs["happy"], Decoding(do_sample=True, temperature=0.7, top_p=0.9,
                                                              max_new_tokens=32))
    assert [c["with_text_only"] for c in main.calls] == [True, True]
    # BLSP-Emo gets the main model's first turn and the main model's transcript of this one
    assert blsp.calls[1]["history"] == [conv.turns[0].reply] and blsp.calls[1]["transcript"] == "sentence 2"
    assert outcome.turn.baselines == {"blsp_emo": "blsp_emo turn 2 after 1 earlier", "text_only": "text-only turn 2"}
    assert {k: blsp.calls[1][k] for k in ("do_sample", "temperature", "top_p", "max_new_tokens")} == {
        "do_sample": True, "temperature": 0.7, "top_p": 0.9, "max_new_tokens": 32}
    assert outcome.notes == ["rellm heard 16000 samples", "BLSP-Emo: blsp_emo heard 16000 samples"]


def test_the_models_default_length_is_kept_unless_the_page_sets_one(wavs):
    main = FakeResponder()
    Conversation().take_turn(Systems(main), wavs["sad"], Decoding())
    assert main.calls[0]["max_new_tokens"] == 128 and main.calls[0]["do_sample"] is False


def test_what_the_page_shows_after_two_turns(wavs):
    conv = Conversation()
    systems = Systems(FakeResponder())
    assert systems.main_name == "RE-LLM" and Systems(FakeResponder("blsp_emo")).main_name == "BLSP-Emo"
    conv.take_turn(systems, wavs["sad"])
    outcome = conv.take_turn(systems, wavs["happy"])
    assert list(probabilities(outcome.reply)) == list(EMOTIONS)
    assert probabilities(outcome.reply)["happy"] == pytest.approx(0.6)
    assert avd_markdown(outcome.reply) == ("| | arousal | valence | dominance |\n|---|---|---|---|\n"
                                           "| model (A/V/D head) | 0.25 | 0.50 | 0.75 |\n"
                                           "| emotion encoder | 0.20 | 0.40 | 0.60 |")
    assert chat_messages(conv) == [
        {"role": "user", "content": "sentence 1  \n*heard as sad, p = 0.60*"},
        {"role": "assistant", "content": "rellm turn 1 after 0 earlier"},
        {"role": "user", "content": "sentence 2  \n*heard as happy, p = 0.60*"},
        {"role": "assistant", "content": "rellm turn 2 after 1 earlier"},
    ]
    assert debug_info(conv, outcome) == {
        "turns": 2, "no_speech": False, "notes": ["rellm heard 16000 samples"], "turn": 2, "history_turns_given": 1,
        "history_given": [{"user": "sentence 1", "assistant": "rellm turn 1 after 0 earlier"}]}


def test_a_model_without_avd_head_says_so(wavs):
    outcome = Conversation().take_turn(Systems(FakeResponder("blsp_emo", with_avd=False)), wavs["sad"])
    assert avd_markdown(outcome.reply) == ("Arousal / valence / dominance: not predicted by this model "
                                           "(it trains no A/V/D head).")
