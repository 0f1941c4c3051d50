"""Synthetic emotional mini corpus ("mini"): eSpeak NG speech in five acted styles.

The built-in recipe needs speech that no licence restricts and that is made on
any machine in seconds. Everyday sentences a user might say to an assistant
(written for this project; their wording carries no emotion) are spoken by
eSpeak NG (the ``espeakng-loader`` wheel, driven through ctypes) in the five
canonical styles by male and female voices. A style is a point in eSpeak's
prosody space (rate, pitch, pitch range, volume, word gap); every utterance gets
its own seeded jitter around its style, and its arousal / valence / dominance
are a fixed function of *its own* jittered parameters, so the dimensional labels
are learnable from the audio and vary within a class, as in real corpora.

Layout written under ``data_folder`` (the ``{data_root}`` of the manifests)::

    wav/<speaker>/<emotion>/<utt_id>.wav      16 kHz mono PCM-16
    .done.synthesise_mini                     options the audio was made with

The recipe passes an empty ``--data_folder`` (the corpus is made, not
downloaded); the audio then goes to ``<save_folder>/../../downloads/mini``,
i.e. ``egs/mini/downloads/mini`` for ``save_folder=data/official``.

The speech comes from ``rellm.data.corpora.espeak_synthesis``. Splits are by
sentence: a sentence's ten utterances (5 styles x 2 voices) all land in one of
train / valid / test, so no set shares wording with another and a model cannot
pass by memorising sentences.
"""
import hashlib
import logging
from pathlib import Path

import numpy as np

from rellm.data.corpora.common import MARKER_NAME, REPORT_FILE, PrepReport, log_summary, set_summary
from rellm.data.corpora.espeak_synthesis import SAMPLE_RATE, run_in_fresh_process, synthesise_corpus
from rellm.data.emotions import EMOTIONS
from rellm.data.manifest import write_data_root
from rellm.utils.io import atomic_write_json
from rellm.utils.stage import DoneMarker

logger = logging.getLogger(__name__)

# Written for this project: things a person says to an assistant, with wording
# that fits any of the five emotions (no "great", "terrible", "again", "wrong").
SENTENCES = (
    "Can you set a timer for twenty minutes?",
    "What is the weather going to be like tomorrow?",
    "Please add milk and bread to my shopping list.",
    "I need to call the bank before five o'clock.",
    "Remind me to water the plants on Sunday.",
    "How long does it take to drive to the airport?",
    "My sister is coming over for dinner tonight.",
    "The meeting has been moved to Thursday morning.",
    "Could you play some music in the kitchen?",
    "I just got a message from my landlord.",
    "What time does the pharmacy close today?",
    "We are painting the living room this weekend.",
    "Turn off the lights in the bedroom, please.",
    "I have to finish this report by Friday.",
    "The package arrived at the front door.",
    "Tell me how to get to the train station.",
    "My phone is showing a new notification.",
    "I will be working from home tomorrow.",
    "Can you read me the latest news headlines?",
    "The car goes in for a service next week.",
    "I found my old notebook from school.",
    "How many days are left until the end of the month?",
    "My brother called me this afternoon.",
    "Please book a table for two at seven.",
    "The printer is printing everything in blue.",
    "I am going to the dentist on Monday.",
    "What should I cook with rice and carrots?",
    "The neighbours are moving out next month.",
    "Send a message to Anna saying I am on my way.",
    "I got the results of the test this morning.",
    "How do I change the password on my laptop?",
    "My flight lands at half past nine.",
    "The library books are due back on Tuesday.",
    "I spoke with my manager about the project.",
    "Can you find a recipe for tomato soup?",
    "The store had the shoes in a different colour.",
    "I have been reading the same book all week.",
    "Wake me up at six thirty tomorrow.",
    "The train leaves at a quarter past eight.",
    "My parents want to visit in the summer.",
    "What is the capital of Australia?",
    "I signed up for a cooking class.",
    "The heating in the flat turns on at six.",
    "Can you convert fifty dollars into euros?",
    "I moved the sofa closer to the window.",
    "Tell me a fact about the ocean.",
    "My friend sent me a photo of her new house.",
    "How much water should I drink every day?",
    "Can you tell me when the bakery opens?",
    "I bought a new jacket for the winter.",
    "The bus was ten minutes late this morning.",
    "My cousin is getting married in June.",
    "Please turn the volume down a little.",
    "We watched a film at the cinema last night.",
    "What is the fastest way to boil an egg?",
    "I left my umbrella at the office.",
    "The kids have a school trip on Wednesday.",
    "Could you check my calendar for next week?",
    "My grandmother is turning ninety this year.",
    "The shop on the corner sells fresh flowers.",
    "I need to renew my passport soon.",
    "How far is the nearest petrol station?",
    "Our team got a new project this week.",
    "I cleaned the whole kitchen this afternoon.",
    "What time is sunset this evening?",
    "My neighbour borrowed my ladder yesterday.",
    "Please call a taxi for nine o'clock.",
    "The concert tickets went on sale today.",
    "I have a job interview on Thursday.",
    "Can you spell the word necessary for me?",
    "We are having fish for dinner tonight.",
    "My laptop restarted in the middle of my work.",
    "The garden needs some work this spring.",
    "I ran into an old friend at the market.",
    "How many grams are in a pound?",
    "The doctor called about my appointment.",
    "My son started learning the piano.",
    "Set an alarm for seven in the morning.",
    "The hotel upgraded our room for the night.",
    "Remind me to buy a birthday card for Tom.",
)

# eSpeak parameters per style: rate (words/min), pitch (0-100), pitch range
# (0-100), volume (0-200), word gap (x10 ms). Measured acoustics of these
# settings (at 5/3 of these volumes) are in docs/pretrained_models.md#espeak-ng-speech-styles.
# eSpeak clips internally from a volume of about 100 on (angry at
# 160 clipped in most utterances), so all volumes are scaled by 0.6 (angry from
# 160): loudness ratios between the styles are kept and no utterance clips.
# Angry is fast and wide-ranged, not only loud: the emotion encoder, like the
# audeering model, normalises each waveform, so loudness is invisible to it; at
# rate 195 / range 70 it confused angry with neutral in 8 of 32 valid utterances.
STYLES = {
    "neutral": {"rate": 165, "pitch": 50, "range": 50, "volume": 60, "wordgap": 0},
    "happy": {"rate": 190, "pitch": 72, "range": 90, "volume": 72, "wordgap": 0},
    "angry": {"rate": 210, "pitch": 36, "range": 90, "volume": 96, "wordgap": 0},
    "sad": {"rate": 125, "pitch": 32, "range": 12, "volume": 42, "wordgap": 2},
    "surprise": {"rate": 180, "pitch": 85, "range": 100, "volume": 84, "wordgap": 0},
}
assert tuple(STYLES) == EMOTIONS

# Per-utterance jitter (uniform, +-): relative for rate and volume, absolute
# points for pitch and range. Large enough that A/V/D vary inside a class, small
# enough that the styles stay separable (neighbouring styles overlap a little).
JITTER = {"rate": 0.07, "pitch": 5.0, "range": 8.0, "volume": 0.08}

# Parameter spans used to normalise to [0, 1] before mapping to A/V/D.
SPANS = {"rate": (110.0, 210.0), "pitch": (25.0, 95.0), "range": (0.0, 100.0), "volume": (30.0, 120.0)}

# Voices: (eSpeak voice name, speaker id, gender). en-us is male (F0 ~100 Hz),
# +f3 and +f2 are female variants (F0 ~210-220 Hz), +m3 a second male.
VOICES = {
    "en-us": ("mini_m1", "M"),
    "en-us+f3": ("mini_f1", "F"),
    "en-us+m3": ("mini_m2", "M"),
    "en-us+f2": ("mini_f2", "F"),
}


def avd_from_params(params):
    """Arousal, valence, dominance in [0, 1] from one utterance's prosody parameters.

    A fixed linear map of the normalised parameters, chosen so that the style
    centroids land where the emotion literature puts them (angry: high arousal,
    low-ish valence, high dominance; sad: low on all three; happy / surprise:
    high arousal and valence), and so that every term is audible:
    arousal ~ speed, loudness and pitch excursion; valence ~ high, lively pitch
    but not shouting; dominance ~ loud, fast and low-pitched.
    """
    n = {k: (params[k] - lo) / (hi - lo) for k, (lo, hi) in SPANS.items()}
    arousal = 0.4 * n["rate"] + 0.4 * n["volume"] + 0.2 * n["range"]
    valence = 0.15 + 0.6 * n["pitch"] + 0.4 * n["range"] - 0.3 * n["volume"]
    dominance = 0.5 * n["volume"] + 0.3 * n["rate"] + 0.2 * (1.0 - n["pitch"])
    return {name: round(float(min(1.0, max(0.0, value))), 4)
            for name, value in (("arousal", arousal), ("valence", valence), ("dominance", dominance))}


def utterance_rng(seed, utt_id):
    """A generator seeded by (seed, utt_id): the same utterance gets the same jitter
    whatever else is generated and in whatever order."""
    digest = hashlib.sha256(f"{seed}:{utt_id}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def jittered_params(style, rng, jitter=JITTER):
    base = STYLES[style]
    u = rng.uniform(-1.0, 1.0, size=4)  # fixed order: rate, pitch, range, volume
    return {
        "rate": round(base["rate"] * (1 + jitter["rate"] * u[0])),
        "pitch": round(min(99, max(0, base["pitch"] + jitter["pitch"] * u[1]))),
        "range": round(min(100, max(0, base["range"] + jitter["range"] * u[2]))),
        "volume": round(base["volume"] * (1 + jitter["volume"] * u[3])),
        "wordgap": base["wordgap"],
    }


def split_sentences(num_sentences, valid_sentences, test_sentences, seed):
    """Sentence index -> set name; a seeded permutation, so deterministic for a seed."""
    if valid_sentences + test_sentences >= num_sentences:
        raise ValueError(
            f"valid_sentences ({valid_sentences}) + test_sentences ({test_sentences}) must leave training "
            f"sentences out of num_sentences={num_sentences}"
        )
    order = np.random.default_rng(seed).permutation(num_sentences)
    sets = {}
    for rank, idx in enumerate(order):
        sets[int(idx)] = "valid" if rank < valid_sentences else "test" if rank < valid_sentences + test_sentences else "train"
    return sets


def default_data_folder(save_folder):
    """Where the audio goes when the recipe passes an empty ``--data_folder``."""
    return (Path(save_folder).resolve() / ".." / ".." / "downloads" / "mini").resolve()


def plan_corpus(seed, voices, num_sentences, valid_sentences, test_sentences):
    """Every utterance to make, as dicts (no audio): id, set, sentence, voice, style, params, A/V/D."""
    if not 1 <= num_sentences <= len(SENTENCES):
        raise ValueError(f"num_sentences must be in 1..{len(SENTENCES)}, got {num_sentences}")
    unknown = [v for v in voices if v not in VOICES]
    if unknown:
        raise ValueError(f"unknown mini voice(s) {unknown}; choose from {', '.join(VOICES)}")
    if len({VOICES[v][1] for v in voices}) < 2:
        logger.warning("mini corpus voices %s are all one gender; use at least one male and one female voice", voices)
    sets = split_sentences(num_sentences, valid_sentences, test_sentences, seed)
    plan = []
    for s_idx in range(num_sentences):
        for voice in voices:
            speaker, gender = VOICES[voice]
            for style in EMOTIONS:
                utt_id = f"{speaker}_{style}_s{s_idx:03d}"
                rng = utterance_rng(seed, utt_id)
                params = jittered_params(style, rng)
                plan.append({
                    "utt_id": utt_id, "set": sets[s_idx], "sentence": s_idx, "transcript": SENTENCES[s_idx],
                    "voice": voice, "speaker": speaker, "gender": gender, "emotion": style,
                    "params": params, **avd_from_params(params),
                    "relpath": f"wav/{speaker}/{style}/{utt_id}.wav",
                    "noise_seed": int(rng.integers(1, 2**31 - 1)),
                })
    return plan


def prepare_mini(data_folder, save_folder, split="official", seed=1234, voices=("en-us", "en-us+f3"),
                 num_sentences=80, valid_sentences=8, test_sentences=12, overwrite=False,
                 skip_prep=False):
    """Synthesise the mini corpus and write ``save_folder/{train,valid,test}.json``.

    Arguments
    ---------
    data_folder : str or Path
        Where the audio is written (the manifests' ``{data_root}``). Empty / None:
        ``<save_folder>/../../downloads/mini``.
    save_folder : str or Path
        Where the manifests, ``prepare_report.json`` and ``data_root.txt`` go.
    split : str
        Only ``"official"`` (the fixed sentence split) exists for mini.
    seed : int
        Sentence split and per-utterance jitter; the same seed gives the same corpus.
    voices : sequence of str
        eSpeak voices (keys of ``VOICES``), at least one male and one female.
    num_sentences, valid_sentences, test_sentences : int
        How many of the built-in sentences to use and how many go to valid / test.
    overwrite : bool
        Re-make audio and manifests made with other options instead of stopping.
    skip_prep : bool
        Do nothing (SpeechBrain convention).
    """
    if skip_prep:
        return
    if split != "official":
        raise ValueError(f"the mini corpus has one split, 'official' (got {split!r}); it is split by sentence")
    save_folder = Path(save_folder)
    data_folder = Path(data_folder).resolve() if data_folder not in (None, "") else default_data_folder(save_folder)
    voices = list(voices)
    options = {"seed": seed, "voices": voices, "num_sentences": num_sentences, "valid_sentences": valid_sentences,
               "test_sentences": test_sentences, "styles": STYLES, "jitter": JITTER,
               "sentences": hashlib.sha256("\n".join(SENTENCES[:num_sentences]).encode()).hexdigest()[:16]}
    manifest_marker = DoneMarker(
        save_folder, MARKER_NAME,
        hint=f"re-run with ./run.sh --overwrite true (python -m rellm.bin.prepare: --overwrite=true), "
             f"or delete {save_folder}")
    if manifest_marker.is_done({**options, "data_root": str(data_folder)}, overwrite=overwrite):
        logger.info("mini manifests in %s are up to date; skipping (pass --overwrite=true to re-make)", save_folder)
        return
    manifest_marker.clear()

    plan = plan_corpus(seed, voices, num_sentences, valid_sentences, test_sentences)
    logger.info("synthesising %d mini utterances (%d sentences x %d voices x %d styles) into %s",
                len(plan), num_sentences, len(voices), len(EMOTIONS), data_folder)
    info = synthesise_corpus(plan, data_folder, options, overwrite=overwrite)

    manifests = {"train": {}, "valid": {}, "test": {}}
    report = PrepReport(data_folder)
    for item in plan:
        made = info[item["utt_id"]]
        if made is None or made[0] == 0:
            report.drop("missing_wav" if made is None else "empty_synthesis", item["utt_id"])
            continue
        num_samples, clipped = made
        if clipped:
            report.note("clipped_samples", item["utt_id"])
        report.keep()
        manifests[item["set"]][item["utt_id"]] = {
            "wav": "{data_root}/" + item["relpath"],
            "duration": round(num_samples / SAMPLE_RATE, 4),
            "transcript": item["transcript"],
            "emotion": item["emotion"],
            "arousal": item["arousal"], "valence": item["valence"], "dominance": item["dominance"],
            "speaker": item["speaker"], "gender": item["gender"],
        }
    # Not rellm.data.corpora.common.run_preparation: the manifests keep the plan order (sentence, voice,
    # style) that existing recipes were made with, where run_preparation sorts them by utterance id.
    for name, manifest in manifests.items():
        atomic_write_json(save_folder / f"{name}.json", manifest)
    write_data_root(save_folder, data_folder)
    summary = {name: set_summary(m) for name, m in manifests.items()}
    report_dict = {
        "corpus": "mini", "split": split, "data_root": str(data_folder),
        "options": {k: v for k, v in options.items() if k not in ("styles", "jitter")},
        "sets": summary,
        "sentences": {name: len({u["transcript"] for u in m.values()}) for name, m in manifests.items()},
        "sample_rates": {str(SAMPLE_RATE): report.kept} if report.kept else {},
        **report.to_dict(),
    }
    atomic_write_json(save_folder / REPORT_FILE, report_dict)
    report.log(logger, "mini corpus")
    manifest_marker.mark_done({**options, "data_root": str(data_folder)})
    log_summary(report_dict, save_folder)
    return report_dict


def say(text, style, out, voice="en-us", seed=0):
    """Write ``text`` spoken in a mini ``style`` to ``out`` (16 kHz mono PCM-16 WAV), to try a trained model.

    The style's own eSpeak parameters (``STYLES``, no per-utterance jitter) and one of ``VOICES``;
    synthesised in a fresh process like the corpus (``run_in_fresh_process``), so the same call always
    gives the same samples. Returns ``{"path", "seconds", "style", "voice", "params", "clipped_samples",
    "espeak", arousal, valence, dominance}``.
    """
    text = " ".join(str(text).split())
    if not text:
        raise ValueError("give the text to say, e.g. say \"Can you set a timer?\" --style sad --out sad.wav")
    if style not in STYLES:
        raise ValueError(f"unknown mini style {style!r}; choose from {', '.join(STYLES)}")
    if voice not in VOICES:
        raise ValueError(f"unknown mini voice {voice!r}; choose from {', '.join(VOICES)}")
    out = Path(out).resolve()
    if out.suffix.lower() != ".wav" or out.is_dir():
        raise ValueError(f"--out must name a .wav file, got {out}")
    params = dict(STYLES[style])
    info, version = run_in_fresh_process([("say", out.name, text, voice, params, int(seed))], out.parent)
    num_samples, clipped = info["say"]
    if num_samples == 0:
        raise RuntimeError(f"eSpeak NG produced no audio for {text!r}")
    return {"path": str(out), "seconds": round(num_samples / SAMPLE_RATE, 3), "style": style, "voice": voice,
            "params": params, "clipped_samples": int(clipped), "espeak": version, **avd_from_params(params)}


def _say_main(argv):
    """``python -m rellm.data.corpora.mini say "TEXT" --style STYLE [--voice VOICE] --out FILE.wav``."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m rellm.data.corpora.mini say",
        description="Speak a sentence of your own in one of the mini corpus's styles (eSpeak NG, 16 kHz WAV), "
                    "e.g. to try a model trained by egs/mini with rellm-respond-audio.")
    parser.add_argument("text", help="what to say")
    parser.add_argument("--style", required=True, choices=list(STYLES), help="the emotion style")
    parser.add_argument("--voice", default="en-us", choices=list(VOICES),
                        help="eSpeak voice (en-us, en-us+m3: male; en-us+f3, en-us+f2: female); default en-us")
    parser.add_argument("--out", required=True, help="output .wav file")
    parser.add_argument("--seed", type=int, default=0, help="eSpeak's noise seed (breathy voices)")
    args = parser.parse_args(argv)
    try:
        result = say(args.text, args.style, args.out, voice=args.voice, seed=args.seed)
    except (ValueError, RuntimeError, ImportError) as err:
        print(f"ERROR: {err}", file=sys.stderr)
        sys.exit(1)
    print(f"wrote {result['path']} ({result['seconds']:.2f} s, {result['style']}, voice {result['voice']}; "
          f"arousal {result['arousal']:.2f}, valence {result['valence']:.2f}, dominance {result['dominance']:.2f})")


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] != ["say"]:
        raise SystemExit("usage: python -m rellm.data.corpora.mini say \"TEXT\" --style STYLE --out FILE.wav")
    _say_main(sys.argv[2:])
