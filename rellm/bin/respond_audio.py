"""Interactive responder: one audio file in, the recognised emotion and an empathetic reply out.

    python -m rellm.bin.respond_audio path/to/utterance.wav --exp exp/rellm/official/seed1 [--text] [--json]
    rellm-respond-audio path/to/utterance.wav --exp ...                    (console script)

``--exp`` is an experiment folder (with ``final/``) or a folder written by ``python -m rellm.export``. The
work is :class:`rellm.responder.Responder` (``from rellm import Responder``): the input checks, the speech
check (silence or noise: "no speech detected", no emotion, no reply), the frozen encoders, the trained
speech-LLM (the SER head's label with its probabilities, arousal / valence / dominance, the empathetic
response: greedy unless ``--do_sample``). ``--text`` adds the text-only baseline: the same frozen LLM given the
transcript (Whisper's own transcription unless ``--transcript`` is given). ``--json`` prints one JSON object
instead of the lines: ``{"no_speech", "emotion", "probabilities": {emotion: p}, "avd": {"arousal", "valence",
"dominance"} or null, "avd_emotion_encoder": ... or null, "response", "notes": [...]}`` plus ``"transcript"``
and ``"text_response"`` with ``--text``.

Input checks: a missing path, a folder, an unreadable or empty file and a file over 30 s (Whisper's
window, the longest utterance the model was trained on) are errors with a one-line message; a
stereo file is downmixed and a non-16 kHz file resampled, each with a note.
"""
import argparse
import json
import sys

from rellm.data.emotions import AVD


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("wav", help="audio file (wav/flac/ogg), at most 30 s")
    p.add_argument("--exp", required=True, help="experiment folder exp/<model>/<split>/seed<seed> (with final/), or "
                   "an exported model folder (python -m rellm.export)")
    p.add_argument("--text", action="store_true", help="also show the text-only baseline's response")
    p.add_argument("--json", action="store_true", help="print one JSON object (emotion, probabilities, avd, response, "
                   "and text_response with --text) instead of the lines")
    p.add_argument("--transcript", default=None, help="transcript for --text (default: Whisper's transcription)")
    p.add_argument("--whisper", default=None, help="Whisper model (default: the experiment's speech encoder)")
    p.add_argument("--emotion_encoder", default=None, help="emotion encoder folder (default: the experiment's)")
    p.add_argument("--max_new_tokens", type=int, default=128)
    p.add_argument("--do_sample", action="store_true", help="sample the reply instead of greedy decoding")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (with --do_sample)")
    p.add_argument("--top_p", type=float, default=1.0, help="nucleus sampling mass (with --do_sample)")
    p.add_argument("--seed", type=int, default=None, help="seed of the sampling (with --do_sample)")
    p.add_argument("--repetition_penalty", type=float, default=1.0, help="stage 5's repetition penalty (the paper "
                   "recipes' conf/infer.yaml: 1.1; the mini recipe's: 1.0, off)")
    p.add_argument("--no_vad", action="store_true", help="answer the input even when no speech is detected in it")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--system_prompt", default=None, help="default: the paper's empathetic system prompt")
    return p.parse_args(argv)


def run_model(args):
    """Everything the responder says about one file, as a dict (see the module docstring for the keys)."""
    from rellm.responder import Responder
    from rellm.responder_audio import SAMPLE_RATE, load_checked_audio

    wave, notes = load_checked_audio(args.wav)  # a bad file is reported before any model is loaded
    responder = Responder.from_pretrained(args.exp, device=args.device, dtype=args.dtype, whisper=args.whisper,
                                          emotion_encoder=args.emotion_encoder, vad=not args.no_vad,
                                          threads=args.threads,
                                          decoding={"repetition_penalty": args.repetition_penalty})
    reply = responder.respond(wave, sample_rate=SAMPLE_RATE, transcript=args.transcript, with_text_only=args.text,
                              system_prompt=args.system_prompt, max_new_tokens=args.max_new_tokens,
                              do_sample=args.do_sample, temperature=args.temperature, top_p=args.top_p,
                              seed=args.seed)
    result = {"no_speech": reply.no_speech, "emotion": reply.emotion, "probabilities": reply.probabilities,
              "avd": reply.avd, "avd_emotion_encoder": reply.avd_emotion_encoder, "response": reply.response,
              "notes": notes + reply.notes}
    if args.text:
        result["transcript"] = reply.transcript
        result["text_response"] = reply.text_only_response
    return result


def format_lines(result):
    """The human-readable answer, one line per item."""
    lines = [f"note: {note}" for note in result["notes"] if not note.startswith("no speech detected")]
    if result.get("no_speech"):
        return [*lines, "no speech detected: nothing to answer (use --no_vad to answer it anyway)"]
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
    from rellm.responder import AudioInputError, ResponderError

    try:
        main(argv)
    except (ResponderError, AudioInputError, FileNotFoundError) as err:
        print(f"ERROR: {err}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    cli()
