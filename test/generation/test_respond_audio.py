"""The interactive responder (a thin CLI on rellm.Responder): input checks with clear messages, silence refused,
and real answers (slow)."""
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from rellm import responder_cli
from rellm.bin import respond_audio
from rellm.data.emotions import EMOTIONS
from rellm.responder_audio import AudioInputError, load_checked_audio
from rellm.testing.prerequisites import require_module


def _tone(seconds, sr, channels=1):
    t = np.arange(int(seconds * sr)) / sr
    x = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def test_a_16k_mono_file_loads_without_notes(tmp_path):
    path = tmp_path / "ok.wav"
    sf.write(path, _tone(1.5, 16000), 16000)
    audio, notes = load_checked_audio(path)
    assert audio.dtype == np.float32 and audio.shape == (24000,) and notes == []


def test_stereo_44k_is_downmixed_and_resampled_with_notes(tmp_path):
    path = tmp_path / "stereo.wav"
    sf.write(path, _tone(2.0, 44100, channels=2), 44100)
    audio, notes = load_checked_audio(path)
    assert notes == ["2 channels downmixed to mono", "resampled from 44100 Hz to 16000 Hz"]
    assert audio.shape == (32000,)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p / "missing.wav", "no such file"),
        (lambda p: p, "is a folder"),
        (lambda p: (p / "notes.wav").write_text("not audio") and p / "notes.wav", "cannot read it as audio"),
        (lambda p: sf.write(p / "long.wav", _tone(31.0, 16000), 16000) or p / "long.wav",
         "is 31.0 s long; the limit is 30 s"),
        (lambda p: sf.write(p / "click.wav", _tone(0.01, 16000), 16000) or p / "click.wav", "at least 0.1 s"),
    ],
)
def test_bad_inputs_get_one_line_messages(tmp_path, make, message):
    with pytest.raises(AudioInputError, match=message):
        load_checked_audio(make(tmp_path))


def test_cli_prints_the_error_and_exits_1(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        respond_audio.cli([str(tmp_path / "nope.wav"), "--exp", str(tmp_path)])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.strip() == f"ERROR: {tmp_path / 'nope.wav'}: no such file"


def test_missing_experiment_is_explained(tmp_path, capsys):
    sf.write(tmp_path / "ok.wav", _tone(1.0, 16000), 16000)
    with pytest.raises(SystemExit):
        respond_audio.cli([str(tmp_path / "ok.wav"), "--exp", str(tmp_path / "exp")])
    assert "exp: no such folder; give an experiment folder" in capsys.readouterr().err
    (tmp_path / "exp").mkdir()
    with pytest.raises(SystemExit):
        respond_audio.cli([str(tmp_path / "ok.wav"), "--exp", str(tmp_path / "exp")])
    assert "has no trained model" in capsys.readouterr().err


def _speech(path, text="Hello there, how are you today?", rate=16000, channels=1):
    """Spoken ``text`` (eSpeak NG, as ``mini say`` makes it) written to ``path`` at ``rate`` with ``channels``."""
    require_module("espeakng_loader")
    import torchaudio.functional as AF

    from rellm.data.corpora.mini import say

    say(text, "neutral", path.with_name("spoken.wav"))
    wave, sr = sf.read(path.with_name("spoken.wav"), dtype="float32")
    if rate != sr:
        wave = AF.resample(torch.from_numpy(wave), sr, rate).numpy()
    sf.write(path, np.stack([wave] * channels, axis=1) if channels > 1 else wave, rate)
    return path


def _blsp_emo_experiment(tmp_path, toy_llm_dir):
    """BLSP-Emo-style model over the toy LLM with the real Whisper tiny.en encoder (384-d states)."""
    from rellm.models.speech_llm import SpeechLLM
    from rellm.testing.pretrained_models import cached_model

    whisper_dir = cached_model("whisper-tiny.en")
    torch.manual_seed(0)
    model = SpeechLLM(str(toy_llm_dir), speech_dim=384, emotion_dim=0, lora_r=4, lora_alpha=8,
                      lora_target_modules=["q_proj", "v_proj"])
    exp = tmp_path / "exp" / "blsp_emo" / "official" / "seed1"
    model.save_final(exp / "final", extra={"base_models": {"llm": str(toy_llm_dir), "speech_encoder": str(whisper_dir),
                                                          "emotion_encoder": None}})
    _speech(tmp_path / "hello.wav", rate=22050, channels=2)
    return exp


@pytest.mark.slow
def test_answers_a_wav_file_end_to_end(tmp_path, toy_llm_dir, capsys):
    exp = _blsp_emo_experiment(tmp_path, toy_llm_dir)
    args = [str(tmp_path / "hello.wav"), "--exp", str(exp), "--max_new_tokens", "6", "--text",
            "--transcript", "Hello there."]
    respond_audio.cli(args)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "note: 2 channels downmixed to mono" and out[1].startswith("note: resampled from 22050 Hz")
    assert out[2].startswith("emotion: ") and out[2].split()[1] in ("neutral", "happy", "angry", "sad", "surprise")
    assert out[3].startswith("arousal / valence / dominance (model head): ")
    assert out[4].startswith("response: ")
    assert out[5] == "transcript: Hello there." and out[6].startswith("text-only response: ")

    # --json: the same answer as one JSON object on stdout (greedy decoding: the same response)
    respond_audio.cli([*args, "--json"])
    printed = capsys.readouterr().out
    result = json.loads(printed)
    assert printed.count("\n") == 1 and set(result) == {
        "no_speech", "emotion", "probabilities", "avd", "avd_emotion_encoder", "response", "notes", "transcript",
        "text_response"}
    assert result["no_speech"] is False
    assert list(result["probabilities"]) == list(EMOTIONS) and sum(result["probabilities"].values()) == pytest.approx(1)
    assert result["emotion"] == max(result["probabilities"], key=result["probabilities"].get)
    assert out[2].startswith(f"emotion: {result['emotion']} (p={result['probabilities'][result['emotion']]:.2f}; ")
    assert set(result["avd"]) == {"arousal", "valence", "dominance"} and result["avd_emotion_encoder"] is None
    assert out[3] == "arousal / valence / dominance (model head): " + " / ".join(
        f"{result['avd'][n]:.2f}" for n in ("arousal", "valence", "dominance"))
    assert out[4] == f"response: {result['response']}" and out[6] == f"text-only response: {result['text_response']}"
    assert result["transcript"] == "Hello there." and result["notes"][0] == "2 channels downmixed to mono"


def test_json_lines_of_a_model_without_avd_head(monkeypatch, tmp_path, capsys):
    """--json without --text: no transcript keys; a model without A/V/D head gives avd null (the lines say so)."""
    fake = {"no_speech": False, "emotion": "sad", "probabilities": dict(zip(EMOTIONS, [0.1, 0.1, 0.1, 0.6, 0.1])), "avd": None,
            "avd_emotion_encoder": {"arousal": 0.2, "valence": 0.1, "dominance": 0.3}, "notes": [],
            "response": "I am sorry."}
    monkeypatch.setattr(responder_cli, "run_model", lambda args: dict(fake))
    respond_audio.cli([str(tmp_path / "x.wav"), "--exp", str(tmp_path), "--json"])
    assert json.loads(capsys.readouterr().out) == fake
    assert responder_cli.format_lines(fake) == [
        "emotion: sad (p=0.60; neutral 0.10, happy 0.10, angry 0.10, sad 0.60, surprise 0.10)",
        "arousal / valence / dominance: not predicted (this model trains no A/V/D head, lambda_dim = 0)",
        "arousal / valence / dominance (emotion encoder): 0.20 / 0.10 / 0.30",
        "response: I am sorry."]


def test_json_mode_errors_stay_one_line_on_stderr(tmp_path, capsys):
    with pytest.raises(SystemExit):
        respond_audio.cli([str(tmp_path / "nope.wav"), "--exp", str(tmp_path), "--json"])
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.strip() == f"ERROR: {tmp_path / 'nope.wav'}: no such file"


@pytest.mark.slow
def test_answers_through_the_emotion_encoder_and_fusion_adapter_of_an_rellm_experiment(tmp_path, toy_llm_dir, capsys):
    """RE-LLM: the responder runs the experiment's emotion encoder and feeds its embedding to the fusion adapter."""
    from rellm.models.emotion_encoder import EmotionEncoder, save_emotion_encoder, small_emotion_config
    from rellm.models.speech_llm import SpeechLLM
    from rellm.testing.pretrained_models import tiny_whisper

    whisper_dir = tiny_whisper(tmp_path / "whisper", d_model=32)
    encoders = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        encoders.append(save_emotion_encoder(EmotionEncoder(small_emotion_config(hidden_size=32, conv_dim=16)).eval(),
                                             tmp_path / f"emotion{seed}"))
    assert (encoders[0] / "model.safetensors").is_file() and not list(encoders[0].glob("*.bin"))
    torch.manual_seed(0)
    model = SpeechLLM(str(toy_llm_dir), speech_dim=32, emotion_dim=32, lora_r=4, lora_alpha=8,
                      lora_target_modules=["q_proj", "v_proj"])
    assert model.adapter.convs[0].weight.shape[1] == 32 + 32  # the fusion adapter: speech + emotion channels
    exp = tmp_path / "exp" / "rellm" / "official" / "seed1"
    model.save_final(exp / "final", extra={"base_models": {"llm": str(toy_llm_dir), "speech_encoder": str(whisper_dir),
                                                          "emotion_encoder": str(encoders[0])},
                                           "avd_head_trained": True,
                                           "speech_features": {"whisper_window_seconds": 2.0}})
    _speech(tmp_path / "hi.wav", text="Hello there, how are you today? I hope you are well.")
    respond_audio.cli([str(tmp_path / "hi.wav"), "--exp", str(exp), "--max_new_tokens", "4", "--text",
                       "--transcript", "Hello there."])
    out = capsys.readouterr().out.splitlines()
    # the model was trained on 2 s Whisper windows (its final/ says so): a longer file is heard through the same window
    assert sf.info(str(tmp_path / "hi.wav")).duration > 2.0
    assert out.pop(0) == "note: only the first 2 s were heard by Whisper (the window this model was trained with)"
    assert out[0].startswith("emotion: ") and out[0].split()[1] in ("neutral", "happy", "angry", "sad", "surprise")
    assert out[1].startswith("arousal / valence / dominance (model head): ")
    encoder_avd = out[2].removeprefix("arousal / valence / dominance (emotion encoder): ").split(" / ")
    assert len(encoder_avd) == 3 and all(abs(float(v)) < 100 for v in encoder_avd), out[2]  # random weights
    assert out[3].startswith("response: ") and out[4] == "transcript: Hello there."
    assert out[5].startswith("text-only response: ")

    # another emotion encoder (--emotion_encoder) changes what the fused model recognises: the embedding is used
    respond_audio.cli([str(tmp_path / "hi.wav"), "--exp", str(exp), "--max_new_tokens", "4",
                       "--emotion_encoder", str(encoders[1])])
    other = capsys.readouterr().out.splitlines()
    assert other[1] != out[0]  # the SER head reads the fused (speech + emotion) adapter output
    respond_audio.cli([str(tmp_path / "hi.wav"), "--exp", str(exp), "--max_new_tokens", "2", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert result["notes"] == ["only the first 2 s were heard by Whisper (the window this model was trained with)"]


def test_silence_is_answered_with_no_speech_detected(tmp_path, toy_llm_dir, capsys):
    """2 s of silence and 3 s of white noise: no emotion, no reply, a one-line "no speech detected"."""
    from rellm.models.speech_llm import SpeechLLM
    from rellm.testing.pretrained_models import tiny_whisper

    whisper_dir = tiny_whisper(tmp_path / "whisper", d_model=32)
    model = SpeechLLM(str(toy_llm_dir), speech_dim=32, emotion_dim=0, lora_r=4, lora_alpha=8,
                      lora_target_modules=["q_proj", "v_proj"])
    exp = tmp_path / "exp" / "blsp_emo" / "official" / "seed1"
    model.save_final(exp / "final", extra={"base_models": {"llm": str(toy_llm_dir), "speech_encoder": str(whisper_dir)}})
    sf.write(tmp_path / "silence.wav", np.zeros(32000, dtype=np.float32), 16000)
    noise = 0.1 * np.random.default_rng(0).standard_normal(48000)
    sf.write(tmp_path / "noise.wav", noise.astype(np.float32), 16000)
    for name in ("silence.wav", "noise.wav"):
        respond_audio.cli([str(tmp_path / name), "--exp", str(exp), "--max_new_tokens", "2"])
        assert capsys.readouterr().out.splitlines() == [
            "no speech detected: nothing to answer (use --no_vad to answer it anyway)"]
    respond_audio.cli([str(tmp_path / "silence.wav"), "--exp", str(exp), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert result["no_speech"] is True and result["emotion"] is None and result["response"] is None
    assert result["probabilities"] == {} and result["notes"][0].startswith("no speech detected")
    # --no_vad: the old behaviour, an emotion and a reply for silence
    respond_audio.cli([str(tmp_path / "silence.wav"), "--exp", str(exp), "--max_new_tokens", "2", "--no_vad", "--json"])
    forced = json.loads(capsys.readouterr().out)
    assert forced["no_speech"] is False and forced["emotion"] in EMOTIONS and forced["response"] is not None
