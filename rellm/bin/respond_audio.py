"""Interactive responder: one wav file in, the recognised emotion and an empathetic reply out.

    python -m rellm.bin.respond_audio path/to/utterance.wav --exp exp/rellm/official/seed1 [--text] [--json]
    rellm-respond-audio path/to/utterance.wav --exp ...                    (console script)

Runs from the recipe folder (relative paths in the experiment's ``final/model.json`` are resolved
there). It runs the frozen Whisper encoder and, for RE-LLM, the frozen emotion encoder itself
(stage 2's extractors), then the trained speech-LLM: the SER head's label with its probability,
arousal / valence / dominance, and the empathetic response (greedy, LoRA in the prefill only).
``--text`` adds the text-only baseline: the same frozen LLM given the transcript (Whisper's own
transcription unless ``--transcript`` is given). ``--json`` prints one JSON object instead of the lines:
``{"emotion", "probabilities": {emotion: p}, "avd": {"arousal", "valence", "dominance"} or null,
"avd_emotion_encoder": ... or null, "response", "notes": [...]}`` plus ``"transcript"`` and
``"text_response"`` with ``--text``.

Input checks: a missing path, a folder, an unreadable or empty file and a file over 30 s (Whisper's
window, the longest utterance the model was trained on) are errors with a one-line message; a
stereo file is downmixed and a non-16 kHz file resampled, each with a note.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

from rellm.data.emotions import AVD
from rellm.training.experiment_dir import ExperimentDir

SAMPLE_RATE = 16000
MAX_SECONDS = 30.0
MIN_SECONDS = 0.1


class ResponderError(RuntimeError):
    """A user error; printed as one line."""


def load_checked_audio(path, max_seconds=MAX_SECONDS):
    """``(mono float32 waveform at 16 kHz, notes)``; raises :class:`ResponderError` with what to do."""
    import soundfile as sf

    path = Path(path)
    if not path.exists():
        raise ResponderError(f"{path}: no such file")
    if path.is_dir():
        raise ResponderError(f"{path} is a folder; give one audio file (wav, flac or ogg)")
    try:
        info = sf.info(str(path))
    except Exception as err:  # libsndfile's message names the problem (format, truncation)
        raise ResponderError(f"{path}: cannot read it as audio ({str(err).strip()}); use a wav, flac or ogg file") from err
    seconds = info.frames / info.samplerate if info.samplerate else 0.0
    if seconds > max_seconds:
        raise ResponderError(
            f"{path} is {seconds:.1f} s long; the limit is {max_seconds:.0f} s (Whisper's window). "
            f"Cut it first, e.g. `sox {path.name} short.wav trim 0 {max_seconds:.0f}`"
        )
    try:
        audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:
        raise ResponderError(f"{path}: cannot decode the audio ({str(err).strip()})") from err
    if audio.shape[0] < MIN_SECONDS * sr:
        raise ResponderError(f"{path} holds {audio.shape[0] / sr:.3f} s of audio; give at least {MIN_SECONDS} s of speech")
    notes = []
    if audio.shape[1] > 1:
        notes.append(f"{audio.shape[1]} channels downmixed to mono")
        audio = audio.mean(axis=1, keepdims=True)
    audio = audio[:, 0]
    if sr != SAMPLE_RATE:
        import torch
        import torchaudio.functional as AF

        notes.append(f"resampled from {sr} Hz to {SAMPLE_RATE} Hz")
        audio = AF.resample(torch.from_numpy(np.ascontiguousarray(audio)), sr, SAMPLE_RATE).numpy()
    if not np.isfinite(audio).all():
        raise ResponderError(f"{path} contains NaN or infinite samples")
    return np.ascontiguousarray(audio, dtype=np.float32), notes


def _avd_head_trained(exp, meta):
    """Whether the experiment trained its A/V/D head, as its ``final/model.json`` (``meta``) records it.

    Experiments saved before that record: ``lambda_dim > 0`` in their resolved hyperparams.
    """
    import re

    if "avd_head_trained" in meta:
        return bool(meta["avd_head_trained"])
    hparams = ExperimentDir(exp).hyperparams
    if not hparams.is_file():
        return True
    match = re.search(r"^lambda_dim:\s*([0-9.eE+-]+)", hparams.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return match is None or float(match.group(1)) > 0


def _resolve_local(value, exp_dir):
    """A path recorded in model.json: as given, else relative to the recipe folder above ``exp/``."""
    p = Path(value).expanduser()
    if p.exists() or p.is_absolute():
        return p
    for parent in Path(exp_dir).resolve().parents:
        if (parent / p).exists():
            return parent / p
    return p


def _final_meta(exp_dir):
    """The experiment's ``final/model.json``: base models, prompts, what was trained."""
    meta_path = ExperimentDir(exp_dir).final_config
    if not meta_path.is_file():
        raise ResponderError(f"{exp_dir} has no trained model (final/model.json); run stage 4 or check --exp")
    with open(meta_path, encoding="utf-8") as f:
        return json.load(f)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("wav", help="audio file (wav/flac/ogg), at most 30 s")
    p.add_argument("--exp", required=True, help="experiment folder exp/<model>/<split>/seed<seed> (with final/)")
    p.add_argument("--text", action="store_true", help="also show the text-only baseline's response")
    p.add_argument("--json", action="store_true", help="print one JSON object (emotion, probabilities, avd, response, "
                   "and text_response with --text) instead of the lines")
    p.add_argument("--transcript", default=None, help="transcript for --text (default: Whisper's transcription)")
    p.add_argument("--whisper", default=None, help="Whisper model (default: the experiment's speech encoder)")
    p.add_argument("--emotion_encoder", default=None, help="emotion encoder folder (default: the experiment's)")
    p.add_argument("--max_new_tokens", type=int, default=128)
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--system_prompt", default=None, help="default: the paper's empathetic system prompt")
    return p.parse_args(argv)


def run_model(args):
    """Everything the responder says about one file, as a dict (see the module docstring for the keys)."""
    import torch

    from rellm.data.emotions import EMOTIONS
    from rellm.generation.decoding import GreedyDecoder
    from rellm.generation.inference import lora_prefill_context
    from rellm.generation.prompts import SYSTEM_EMPATHETIC
    from rellm.generation.runtime import set_threads, stop_ids_for
    from rellm.utils.torch_device import pick_device, pick_dtype

    audio, notes = load_checked_audio(args.wav)
    meta = _final_meta(args.exp)
    base = meta.get("base_models", {})
    set_threads(args.threads)
    device = pick_device(args.device)
    dtype = pick_dtype(args.dtype, device)

    from rellm.features.whisper_states import WhisperStateExtractor
    from rellm.models.speech_llm import SpeechLLM

    whisper_name = args.whisper or base.get("speech_encoder")
    if not whisper_name:
        raise ResponderError("the experiment does not record its speech encoder; pass --whisper NAME_OR_FOLDER")
    # the window the model was trained on (stage 2's features.json, recorded by stage 4); 30 s if not recorded
    window = meta.get("speech_features", {}).get("whisper_window_seconds")
    whisper = WhisperStateExtractor.from_pretrained(whisper_name, device=device, window_seconds=window)
    if len(audio) > whisper.max_samples:
        notes.append(f"only the first {whisper.window_seconds:g} s were heard by Whisper (the window this model "
                     "was trained with)")
    states = whisper([audio])[0]
    model = SpeechLLM.from_pretrained_dir(args.exp, device=device, dtype=dtype)

    emotion_embedding, avd_prediction = None, None
    if model.emotion_dim:
        from rellm.features.emotion import EmotionEmbedder

        folder = args.emotion_encoder or base.get("emotion_encoder")
        if not folder:
            raise ResponderError("this RE-LLM experiment does not record its emotion encoder; pass --emotion_encoder")
        folder = _resolve_local(folder, args.exp)
        if not folder.is_dir():
            raise ResponderError(f"emotion encoder folder {folder} not found; pass --emotion_encoder FOLDER")
        emb, avd = EmotionEmbedder.from_folder(folder, device=device)([audio])
        emotion_embedding, avd_prediction = torch.from_numpy(emb).to(device), avd[0]

    with torch.no_grad():
        lengths = torch.tensor([states.shape[0]], device=device)
        E, M = model.encode_speech(states.unsqueeze(0).to(device), lengths, emotion_embedding)
        probs = torch.softmax(model.classify_emotion(E, M).float(), -1)[0]
        avd = model.predict_avd(E, M).float()[0].tolist() if _avd_head_trained(args.exp, meta) else None
        # BLSP-Emo trains no dimensional loss: its A/V/D head holds its initial weights, so avd is None
        result = {"emotion": EMOTIONS[int(probs.argmax())],
                  "probabilities": {e: float(p) for e, p in zip(EMOTIONS, probs)},
                  "avd": None if avd is None else {n: float(v) for n, v in zip(AVD, avd)},
                  "avd_emotion_encoder": None if avd_prediction is None else {
                      n: float(v) for n, v in zip(AVD, avd_prediction)},
                  "notes": notes}

        stops = stop_ids_for(model.tokenizer, model.layout)
        decoder = GreedyDecoder(model.base_llm, stops, pad_token_id=stops[0])
        system = args.system_prompt or SYSTEM_EMPATHETIC

        def reply(**kw):
            inputs = model.build_generation_inputs(system, [""], **kw)
            out = decoder.generate(inputs["inputs_embeds"], inputs["attention_mask"], inputs["position_ids"],
                                   max_new_tokens=args.max_new_tokens,
                                   prefill_context=lora_prefill_context(model, inputs["lora_mask"]))
            return model.tokenizer.decode(out.tokens[0], skip_special_tokens=True).strip()

        result["response"] = reply(speech=(E, M))
        if args.text:
            transcript = args.transcript
            if transcript is None:
                from rellm.pretrained import load_whisper

                asr, processor = load_whisper(whisper_name)
                feats = processor(audio, sampling_rate=SAMPLE_RATE, return_tensors="pt")
                ids = asr.generate(feats["input_features"])
                transcript = processor.batch_decode(ids, skip_special_tokens=True)[0].strip()
            result["transcript"] = transcript
            result["text_response"] = reply(texts=[transcript])
    return result


def format_lines(result):
    """The human-readable answer, one line per item."""
    lines = [f"note: {note}" for note in result["notes"]]
    probs = result["probabilities"]
    lines.append(f"emotion: {result['emotion']} (p={probs[result['emotion']]:.2f}; "
                 + ", ".join(f"{e} {p:.2f}" for e, p in probs.items()) + ")")
    if result["avd"] is not None:
        lines.append("arousal / valence / dominance (model head): "
                     + " / ".join(f"{result['avd'][n]:.2f}" for n in AVD))
    else:
        lines.append("arousal / valence / dominance: not predicted (this model trains no A/V/D head, lambda_dim = 0)")
    if result["avd_emotion_encoder"] is not None:
        lines.append("arousal / valence / dominance (emotion encoder): "
                     + " / ".join(f"{result['avd_emotion_encoder'][n]:.2f}" for n in AVD))
    lines.append(f"response: {result['response']}")
    if "text_response" in result:
        lines += [f"transcript: {result['transcript']}", f"text-only response: {result['text_response']}"]
    return lines


def respond(args):
    result = run_model(args)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print("\n".join(format_lines(result)))
    return result


def main(argv=None):
    args = parse_args(argv)
    respond(args)


def cli(argv=None):
    try:
        main(argv)
    except (ResponderError, FileNotFoundError) as err:
        print(f"ERROR: {err}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    cli()
