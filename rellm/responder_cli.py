"""What ``rellm-respond-audio`` (``rellm.bin.respond_audio``) does with its parsed arguments: one file through a
:class:`rellm.responder.Responder`, printed as lines or as one JSON object."""
import json

from rellm.data.emotions import AVD


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
