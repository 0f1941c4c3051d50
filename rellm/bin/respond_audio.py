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
import sys

from rellm.responder_cli import respond


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
