"""Neutral synthetic speech for the mini recipe's training step 1 (the semantic alignment on "ASR" data).

BLSP-Emo's step 1 runs on a large ASR corpus, not on the SER corpus (docs/method.md#training-steps). The mini
recipe's stand-in: sentences generated here from word lists (none of them a sentence of the
mini SER corpus, ``rellm.data.corpora.mini.SENTENCES``), spoken by eSpeak NG through the mini
corpus's own synthesiser in its neutral style (jittered like the corpus) by both voices. The
manifests have no emotion label and no A/V/D, as ASR data. The mini recipe uses 400 sentences
(800 utterances): its stage 3 writes a continuation of each, and step 1 reads each once.
"""
import hashlib
import logging
from pathlib import Path

import numpy as np

from rellm.data.corpora.common import REPORT_FILE, PrepReport
from rellm.data.corpora.espeak_synthesis import SAMPLE_RATE, synthesise_corpus
from rellm.data.manifest import write_data_root
from rellm.utils.io import atomic_write_json
from rellm.utils.stage import DoneMarker

logger = logging.getLogger(__name__)

# Four kinds of sentence, each built from its own word lists, so that step 1 hears a broad everyday
# vocabulary (several hundred words) in the forms the SER corpus uses (requests, questions, statements
# about one's day, short narration). With one narrow template (36 words) the step-1 adapter learned to
# pass on little more than those words. Written for this project, independently of the SER sentences.
SUBJECTS = ("The librarian", "My neighbour", "The old farmer", "A young engineer", "The bus driver", "Our teacher",
            "The museum guide", "A quiet student", "The baker", "Her cousin", "The postman", "My aunt",
            "The nurse", "A tall stranger", "The football coach", "Our landlady")
ACTIONS = ("carried the boxes to", "painted the fence near", "read a long report in", "waited for the train at",
           "planted some tomatoes behind", "fixed the broken lamp in", "counted the chairs in",
           "left a small parcel at", "opened the windows of", "swept the floor of", "lost her gloves in",
           "took a photograph of", "delivered the letters to", "found a lost puppy near")
PLACES = ("the station", "the town hall", "the garden", "the harbour", "the village school", "the corner shop",
          "the hospital", "the public library", "the market square", "the hotel", "the old bridge",
          "the swimming pool", "the church", "the car park", "the post office", "the bakery")
TIMES = ("on Monday morning", "after lunch", "before the rain started", "late in the evening", "last weekend",
         "at half past nine", "yesterday afternoon", "during the storm", "in the spring", "two days ago")
OPENERS = (("Could you", "?"), ("Can you", "?"), ("Please", "."), ("Would you", "?"), ("I want you to", "."),
           ("Do not forget to", "."))
TASKS = ("send an email to my colleague", "order more coffee beans", "switch on the fan in the study",
         "write down the number of the plumber", "find a good film for the weekend",
         "look up the opening hours of the museum", "turn the radio on", "translate this letter into Spanish",
         "check the score of the football match", "pay the electricity bill", "save this picture to my album",
         "call my uncle in Canada", "lock the back door", "make a note about the budget",
         "measure the width of the table", "explain how a rainbow forms", "suggest a present for my nephew",
         "start the washing machine", "count the guests for the party", "print two copies of the invoice",
         "open the curtains in the living room", "add cheese and apples to the list", "text my sister the address",
         "cancel my gym class", "move my haircut to another day", "close the garage door",
         "read the instructions for the oven", "share the photos from the wedding", "water the tomato plants",
         "sort my emails by date")
WHENS = ("tomorrow evening", "in ten minutes", "before lunch", "on Saturday", "next Tuesday", "this afternoon",
         "after the meeting", "at eleven o'clock", "later today", "as soon as possible")
EVENTS = ("I forgot my keys at the gym", "We ordered a pizza with mushrooms", "My daughter drew a picture of a horse",
          "I repaired the chain on my bicycle", "The dog chewed one of my slippers",
          "Our landlady replaced the old fridge", "I planted roses along the fence", "The baby slept for three hours",
          "My uncle sold his motorbike", "I lost a button from my coat", "We booked a cabin by the lake",
          "The cat knocked a glass off the shelf", "My colleague brought a cake to the office",
          "I read an article about volcanoes", "The plumber fixed the leaking tap", "We walked along the river",
          "My nephew learned to ride a scooter", "I sent the forms to the council", "The power went out for an hour",
          "We painted the fence green", "I finished a jigsaw puzzle with a thousand pieces",
          "My friend lent me her camera", "The school bus broke down near the bridge", "I tried a new recipe for curry",
          "Our football team won the final", "I sold my old guitar online", "The shop ran out of bread",
          "My mother called from her holiday", "We found a bird nest in the chimney", "I started a course in French")
EVENT_TIMES = ("yesterday", "this morning", "last night", "two days ago", "on Friday", "during the holidays",
               "a few minutes ago", "last month")
QUESTIONS = ("What is the tallest mountain in Europe", "How do you make pancakes", "Where can I buy a cheap bicycle",
             "When does the swimming pool open", "Why is the sky blue", "How many legs does a spider have",
             "What is the temperature outside", "How long should I boil potatoes", "Which planet is closest to the sun",
             "How much does a stamp for a letter cost", "What is the population of Canada",
             "How do I remove a coffee stain", "Where is the closest cash machine", "When was the first moon landing",
             "How many players are in a rugby team", "What does the word generous mean",
             "How far can a horse run in a day", "Which fruit has the most vitamin C", "How old is the oldest tree",
             "What is the best way to learn chess", "How do bees make honey", "Who invented the telephone",
             "How many minutes are in a week", "What is the speed of sound", "How do I fold a paper plane",
             "What should I pack for a camping trip", "How often should I feed a goldfish",
             "Where do penguins live", "What time do the shops close on Sunday", "How do I reset the router")
QUESTION_PREFIXES = ("", "Excuse me, ", "Tell me, ")
MAX_SENTENCES = 1000


def sentence_pools():
    """The four kinds of sentence, each as a list of every sentence it can make."""
    narration = [f"{s} {a} {p} {t}." for s in SUBJECTS for a in ACTIONS for p in PLACES for t in TIMES]
    requests = [f"{o} {task} {w}{end}" for o, end in OPENERS for task in TASKS for w in WHENS]
    events = [f"{e} {t}." for e in EVENTS for t in EVENT_TIMES]
    questions = [f"{q}?" if not prefix else f"{prefix}{q[0].lower()}{q[1:]}?"
                 for q in QUESTIONS for prefix in QUESTION_PREFIXES]
    return [narration, requests, events, questions]


def generate_sentences(num_sentences, seed, exclude=()):
    """``num_sentences`` distinct sentences, a seeded sample dealt in turn from the four kinds (requests,
    questions, statements, narration) so that any prefix of the sample mixes them; none in ``exclude``."""
    excluded = {e.strip().lower() for e in exclude}
    rng = np.random.default_rng(seed)
    pools = []
    for pool in sentence_pools():
        pool = [c for c in pool if c.lower() not in excluded]
        pools.append([pool[i] for i in rng.permutation(len(pool))])
    limit = min(MAX_SENTENCES, sum(len(p) for p in pools))
    if not 1 <= num_sentences <= limit:
        raise ValueError(f"num_sentences must be in 1..{limit}, got {num_sentences}")
    sentences, depth = [], 0
    while len(sentences) < num_sentences:
        sentences.extend(p[depth] for p in pools if depth < len(p))
        depth += 1
    return sentences[:num_sentences]


def plan_asr_set(seed, voices, num_sentences, valid_sentences):
    """Every utterance to make (no audio): id, set, transcript, voice, neutral prosody with jitter."""
    from rellm.data.corpora import mini

    unknown = [v for v in voices if v not in mini.VOICES]
    if unknown:
        raise ValueError(f"unknown mini voice(s) {unknown}; choose from {', '.join(mini.VOICES)}")
    if not 0 < valid_sentences < num_sentences:
        raise ValueError(f"valid_sentences must be in 1..{num_sentences - 1}, got {valid_sentences}")
    sentences = generate_sentences(num_sentences, seed, exclude=mini.SENTENCES)
    plan = []
    for s_idx, text in enumerate(sentences):
        for voice in voices:
            speaker, gender = mini.VOICES[voice]
            utt_id = f"asr_{speaker}_s{s_idx:03d}"
            rng = mini.utterance_rng(seed, utt_id)
            plan.append({
                "utt_id": utt_id, "set": "valid" if s_idx < valid_sentences else "train", "transcript": text,
                "voice": voice, "speaker": speaker, "gender": gender,
                "params": mini.jittered_params("neutral", rng), "relpath": f"wav/{speaker}/{utt_id}.wav",
                "noise_seed": int(rng.integers(1, 2**31 - 1)),
            })
    return plan


def prepare_mini_asr(data_folder, save_folder, split="asr", seed=4321, voices=("en-us", "en-us+f3"),
                     num_sentences=100, valid_sentences=10, overwrite=False, skip_prep=False):
    """Synthesise the step-1 set and write ``save_folder/{train,valid}.json`` (no emotion, no A/V/D).

    ``data_folder`` empty: ``<save_folder>/../downloads/mini_asr`` (the recipe's ``downloads/``).
    ``num_sentences`` x ``len(voices)`` utterances; the first ``valid_sentences`` sentences are ``valid``.
    """
    from rellm.data.corpora import mini

    if skip_prep:
        return None
    save_folder = Path(save_folder)
    data_folder = (Path(data_folder).resolve() if data_folder not in (None, "")
                   else (save_folder.resolve() / ".." / ".." / "downloads" / "mini_asr").resolve())
    voices = list(voices)
    plan = plan_asr_set(seed, voices, num_sentences, valid_sentences)
    options = {"split": split, "seed": seed, "voices": voices, "num_sentences": num_sentences,
               "valid_sentences": valid_sentences, "neutral_style": mini.STYLES["neutral"], "jitter": mini.JITTER,
               "sentences": hashlib.sha256("\n".join(sorted({p["transcript"] for p in plan})).encode()).hexdigest()[:16]}
    marker = DoneMarker(save_folder, "prepare_mini_asr")
    if marker.is_done({**options, "data_root": str(data_folder)}, overwrite=overwrite):
        logger.info("mini_asr manifests in %s are up to date; skipping", save_folder)
        return None
    marker.clear()
    logger.info("synthesising %d neutral step-1 utterances (%d sentences x %d voices) into %s", len(plan),
                num_sentences, len(voices), data_folder)
    info = synthesise_corpus(plan, data_folder, options, overwrite=overwrite)
    manifests, drops = {"train": {}, "valid": {}}, PrepReport(data_folder)
    for item in plan:
        got = info[item["utt_id"]]
        if got is None or got[0] == 0:
            drops.drop("missing_wav" if got is None else "empty_synthesis", item["utt_id"])
            continue
        drops.keep()
        manifests[item["set"]][item["utt_id"]] = {
            "wav": "{data_root}/" + item["relpath"], "duration": round(got[0] / SAMPLE_RATE, 4),
            "transcript": item["transcript"], "emotion": None, "arousal": None, "valence": None, "dominance": None,
            "speaker": item["speaker"], "gender": item["gender"],
        }
    for name, manifest in manifests.items():
        atomic_write_json(save_folder / f"{name}.json", manifest)
    write_data_root(save_folder, data_folder)
    report = {"corpus": "mini_asr", "split": split, "data_root": str(data_folder),
              "options": {k: v for k, v in options.items() if k not in ("neutral_style", "jitter")},
              "sets": {name: {"utterances": len(m), "hours": round(sum(u["duration"] for u in m.values()) / 3600, 4)}
                       for name, m in manifests.items()},
              **drops.to_dict()}
    atomic_write_json(save_folder / REPORT_FILE, report)
    drops.log(logger, "mini_asr")
    marker.mark_done({**options, "data_root": str(data_folder)})
    return report
