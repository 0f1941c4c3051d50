"""rellm.Responder: audio in, emotion and reply out; the speech check, batches, history, sampling, inputs."""
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from api_helpers import silence, white_noise

from rellm.data.emotions import EMOTIONS
from rellm.responder import Reply, ResponderError
from rellm.responder_audio import AudioInputError, checked_array, checked_input


def test_import_rellm_stays_light_and_exposes_the_responder():
    code = ("import sys, rellm; assert 'torch' not in sys.modules, 'torch imported'; "
            "from rellm import Responder, Reply; print(Responder.__module__, Reply.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["rellm.responder", "Reply"]


# ---------------------------------------------------------------- input checks (library side)
def test_array_inputs_are_checked_and_converted():
    t = np.arange(8000) / 8000
    tone = (0.5 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    wave, notes = checked_array(tone, 8000)
    assert wave.shape == (16000,) and wave.dtype == np.float32 and notes == ["resampled from 8000 Hz to 16000 Hz"]
    ints = (tone * 32767).astype(np.int16)  # what a browser microphone gives (Gradio: (rate, int16 array))
    wave16, notes = checked_array(ints, 16000)
    assert notes == ["int16 samples scaled to [-1, 1]"] and np.abs(wave16 - tone).max() < 1e-4
    stereo = np.stack([tone, tone])  # [channels, samples]
    wave_s, notes = checked_array(torch.from_numpy(stereo), 16000)
    assert notes == ["2 channels downmixed to mono"] and np.allclose(wave_s, tone)
    with pytest.raises(AudioInputError, match="needs its sample rate"):
        checked_array(tone, None)
    with pytest.raises(AudioInputError, match="NaN or infinite"):
        checked_array(np.full(4000, np.nan, dtype=np.float32), 16000)
    with pytest.raises(AudioInputError, match="the limit is 30 s"):
        checked_array(np.zeros(31 * 16000, dtype=np.float32), 16000)
    with pytest.raises(AudioInputError, match="at least 0.1 s"):
        checked_array(np.zeros(100, dtype=np.float32), 16000)


def test_a_file_and_a_conflicting_sample_rate_is_refused(tmp_path):
    sf.write(tmp_path / "a.wav", np.zeros(16000, dtype=np.float32), 16000)
    assert checked_input(tmp_path / "a.wav", 16000)[0].shape == (16000,)
    with pytest.raises(AudioInputError, match="leave sample_rate out for a file"):
        checked_input(str(tmp_path / "a.wav"), 22050)


# ---------------------------------------------------------------- no speech, no answer
def test_the_speech_detector_finds_speech_and_nothing_in_silence_or_noise(speech_wavs):
    from rellm.responder_vad import SpeechDetector

    threads = torch.get_num_threads()
    detector = SpeechDetector()
    assert torch.get_num_threads() == threads  # importing silero_vad must not change the process's threads
    assert detector.speech_seconds(silence(2.0)) == 0.0
    assert detector.speech_seconds(white_noise(3.0)) == 0.0
    assert detector.speech_seconds(white_noise(3.0, level=0.5, seed=1)) == 0.0
    for path in speech_wavs:
        wave, _ = checked_input(path)
        assert detector.speech_seconds(wave) > 0.5 * len(wave) / 16000, path.name  # mostly speech


def test_silence_and_noise_get_no_emotion_and_no_reply(responder, speech_wavs):
    for audio in (silence(2.0), white_noise(3.0)):
        reply = responder.respond(audio, sample_rate=16000, max_new_tokens=4)
        assert reply.no_speech and reply.emotion is None and reply.probabilities == {} and reply.response is None
        assert reply.avd is None and reply.speech_seconds == 0.0
        assert reply.notes[-1].startswith("no speech detected")
    speech = responder.respond(speech_wavs[0], max_new_tokens=4)
    assert not speech.no_speech and speech.emotion in EMOTIONS and speech.response is not None
    assert speech.speech_seconds > 1.0


def test_without_the_speech_check_silence_gets_a_confident_answer(rellm_exp):
    """What the check prevents: the emotion head names a class for silence and the LLM replies to it."""
    from rellm import Responder

    unchecked = Responder.from_pretrained(rellm_exp, device="cpu", vad=False)
    reply = unchecked.respond(silence(2.0), sample_rate=16000, max_new_tokens=3)
    assert not reply.no_speech and reply.emotion in EMOTIONS and reply.response is not None
    assert sum(reply.probabilities.values()) == pytest.approx(1.0)


# ---------------------------------------------------------------- the reply
def test_a_reply_has_emotion_probabilities_avd_and_the_encoder_avd(responder, speech_wavs):
    reply = responder.respond(speech_wavs[1], max_new_tokens=5)
    assert list(reply.probabilities) == list(EMOTIONS) and sum(reply.probabilities.values()) == pytest.approx(1)
    assert reply.emotion == max(reply.probabilities, key=reply.probabilities.get)
    assert set(reply.avd) == set(reply.avd_emotion_encoder) == {"arousal", "valence", "dominance"}
    assert reply.transcript is None and reply.text_only_response is None and reply.ser_answer is None
    assert reply.to_dict()["response"] == reply.response
    # greedy decoding: the same reply every time
    assert responder.respond(speech_wavs[1], max_new_tokens=5) == reply


def test_a_batch_gives_the_replies_of_one_by_one(responder, speech_wavs):
    batch = responder.respond([speech_wavs[2], speech_wavs[0], speech_wavs[1]], max_new_tokens=6)
    single = [responder.respond(p, max_new_tokens=6) for p in (speech_wavs[2], speech_wavs[0], speech_wavs[1])]
    assert [r.response for r in batch] == [r.response for r in single]
    assert [r.emotion for r in batch] == [r.emotion for r in single]
    for b, s in zip(batch, single):
        assert b.probabilities == pytest.approx(s.probabilities, abs=1e-5)
        assert b.avd == pytest.approx(s.avd, abs=1e-5)
        assert b.avd_emotion_encoder == pytest.approx(s.avd_emotion_encoder, abs=1e-4)
    # the utterances have different lengths: a batch pads them, which must change nothing
    assert len({sf.info(str(p)).frames for p in speech_wavs}) == 3
    # a silent input inside a batch is answered as silence and leaves the others alone
    mixed = responder.respond([speech_wavs[2], silence(1.0)], sample_rate=[None, 16000], max_new_tokens=6)
    assert mixed[0].response == single[0].response and mixed[1].no_speech
    with pytest.raises(ResponderError, match="one per input"):
        responder.respond(list(speech_wavs), history=[[]], max_new_tokens=2)


def test_sampling_is_an_option_and_repeatable_with_a_seed(responder, speech_wavs):
    greedy = responder.respond(speech_wavs[0], max_new_tokens=8).response
    draws = [responder.respond(speech_wavs[0], max_new_tokens=8, do_sample=True, temperature=1.5, seed=s).response
             for s in (1, 1, 2, 3)]
    assert draws[0] == draws[1]
    assert len(set(draws + [greedy])) > 1  # a random toy LLM at temperature 1.5: the draws differ
    with pytest.raises(ResponderError, match="temperature must be > 0"):
        responder.respond(speech_wavs[0], do_sample=True, temperature=0)


def test_text_only_reply_is_the_frozen_llm_on_the_transcript(responder, speech_wavs, bases):
    """with_text_only: stage 5's text-only system, i.e. the base LLM alone (LoRA off) given the words."""
    from rellm.generation.inference import TextOnlySystem
    from rellm.generation.prompts import SYSTEM_EMPATHETIC
    from rellm.generation.runtime import build_decoder, load_llm
    from rellm.responder import DECODING

    reply = responder.respond(speech_wavs[0], transcript="We finally got the keys to our new house today!",
                              with_text_only=True, max_new_tokens=6)
    assert reply.transcript == "We finally got the keys to our new house today!"
    llm, tok, layout = load_llm(str(bases[0]), "float32", torch.device("cpu"))
    reference = TextOnlySystem(llm, tok, layout, build_decoder(llm, tok, layout, DECODING)).generate(
        ["u"], {"u": {"transcript": reply.transcript}}, SYSTEM_EMPATHETIC, "", 6)[0]
    assert reply.text_only_response == reference


# ---------------------------------------------------------------- conversation history
def test_history_reaches_the_prompt_and_changes_the_reply_distribution(responder, speech_wavs):
    tok = responder.model.tokenizer
    history = [("I lost my keys.", "Oh no, that is annoying."), ("Now I found them!", "That is wonderful.")]
    plain = responder.prompt_preview(speech_wavs[0])
    chat = responder.prompt_preview(speech_wavs[0], history=history)
    speech = [i for i, t in enumerate(chat.token_ids) if t is None]
    assert len(speech) == sum(t is None for t in plain.token_ids) > 0
    before = chat.token_ids[: speech[0]]
    # the earlier turns, in order, as content tokens, all before the speech turn
    content = [responder.model.layout.encode_content(text) for turn in history for text in turn]
    at = 0
    for ids in content:
        found = next(i for i in range(at, len(before)) if before[i: i + len(ids)] == ids)
        at = found + len(ids)
    assert len(chat.token_ids) > len(plain.token_ids) + sum(map(len, content))
    assert chat.text.count("<|im_start|>user") == 3 and "That is wonderful." in chat.text
    assert plain.token_ids == responder.model.layout.prompt_ids(
        "You are a helpful assistant. Your response should fulfill requests with empathy toward user's emotion "
        "tone.", "") + [None] * len(speech) + list(responder.model.layout.header_ids)
    # the history changes the model's output distribution for the reply
    assert not torch.allclose(plain.next_token_logits, chat.next_token_logits, atol=1e-3)
    # and respond() decodes from that prompt: its first token is the preview's best non-stop token
    stops = set(responder.decoder.stop_token_ids)
    for preview, hist in ((plain, None), (chat, history)):
        logits = preview.next_token_logits.clone()
        logits[sorted(stops)] = -float("inf")  # min_new_tokens = 1: no stop as the first token
        first = tok.decode([int(logits.argmax())], skip_special_tokens=True).strip()
        assert responder.respond(speech_wavs[0], history=hist, max_new_tokens=1).response == first


def test_replies_as_history_carry_their_transcripts(responder, speech_wavs):
    first = responder.respond(speech_wavs[0], transcript="I can't believe you did that.", history=[],
                              max_new_tokens=4)
    assert first.transcript == "I can't believe you did that." and first.response
    preview = responder.prompt_preview(speech_wavs[1], history=[first])
    assert "I can't believe you did that." in preview.text and first.response.strip() in preview.text
    # a Reply without a transcript cannot be a history turn: the error says how to get one
    bare = responder.respond(speech_wavs[0], max_new_tokens=2)
    with pytest.raises(ResponderError, match="with_transcript=True"):
        responder.respond(speech_wavs[1], history=[bare], transcript="x", max_new_tokens=2)
    # a turn without speech has nothing to add: left out, with a note
    quiet = responder.respond(silence(1.0), sample_rate=16000)
    reply = responder.respond(speech_wavs[1], history=[quiet, first], max_new_tokens=2, transcript="ok")
    assert "history turn 1 had no speech and no reply; left out of the prompt" in reply.notes
    with pytest.raises(ResponderError, match="give Reply objects"):
        responder.respond(speech_wavs[1], history=["just text"], max_new_tokens=2)


@pytest.mark.slow
def test_whisper_transcribes_for_the_history_and_the_text_only_reply(tmp_path, speech_wavs, whisper_tiny_dir, bases):
    """With the real whisper-tiny.en: a call with a history transcribes the speech itself."""
    from api_helpers import make_experiment

    from rellm import Responder

    exp = make_experiment(tmp_path, bases[0], whisper_tiny_dir, speech_dim=384, window=None)
    responder = Responder.from_pretrained(exp, device="cpu")
    reply = responder.respond(speech_wavs[1], history=[], max_new_tokens=3)
    words = reply.transcript.lower()
    assert "house" in words and "keys" in words, reply.transcript
    assert reply.emotion in EMOTIONS and reply.avd is None and reply.avd_emotion_encoder is None  # BLSP-Emo
    both = responder.respond([speech_wavs[0], speech_wavs[1]], with_text_only=True, max_new_tokens=3)
    assert both[1].transcript == reply.transcript and all(r.text_only_response is not None for r in both)
    assert "believe" in both[0].transcript.lower()


def test_reply_dicts_round_trip_as_history():
    reply = Reply(no_speech=False, emotion="sad", probabilities={"sad": 1.0}, response="I am sorry.",
                  transcript="My dog died.")
    from rellm.responder import history_turns

    saved = {**reply.to_dict(), "shown_at": "12:00"}  # e.g. kept by an app with fields of its own
    assert history_turns([saved, ("Hi", "Hello"), {"user": "Bye", "assistant": "Take care."}]) == (
        [("My dog died.", "I am sorry."), ("Hi", "Hello"), ("Bye", "Take care.")], [])
    with pytest.raises(ResponderError, match="give Reply objects"):
        history_turns([{"text": "hello"}])
