"""Helpers for the scoring tests: tiny random-weight text encoders, synthetic EPITOME CSVs and stage-5 files."""
import csv
import json
import random
from pathlib import Path

import torch
from transformers import BertConfig, BertModel, BertTokenizerFast

from rellm.scoring.epitome.data import CSV_FILES

WORDS = ["i", "am", "so", "sorry", "to", "hear", "that", "you", "feel", "sad", "alone", "today", "what", "happened", "are", "you", "okay", "hope", "it", "gets", "better", "my", "dog", "died", "lost", "job", "again", "the", "exam", "went", "badly", "thanks", "for", "sharing", "have", "tried", "talking", "someone", "it", "will", "be", "fine", "that", "sounds", "hard", "how", "long", "been", "feeling", "this", "way", "went", "through", "same", "thing", "too", "last", "year", "do", "want", "talk", "about"]


def tiny_tokenizer():
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(WORDS)), *list("abcdefghijklmnopqrstuvwxyz"),
             *list(".,?!'")]
    return BertTokenizerFast(vocab={word: k for k, word in enumerate(vocab)}, do_lower_case=True)


def tiny_encoder(seed=0, layers=2):
    """``(BertModel, fast tokenizer)`` with 32-wide hidden states and random weights."""
    torch.manual_seed(seed)
    tokenizer = tiny_tokenizer()
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=layers,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    return BertModel(config).eval(), tokenizer


SEEKERS = ["my dog died today", "i lost my job again", "the exam went badly", "i feel so alone",
           "i have been feeling sad", "what happened to me today is hard"]
# (response, ER level, ER rationale, IP level, IP rationale, EX level, EX rationale)
RESPONSES = [
    ("i am so sorry to hear that", 2, "so sorry", 0, "", 0, ""),
    ("what happened ? are you okay ?", 0, "", 0, "", 2, "are you okay ?"),
    ("i went through the same thing last year", 0, "", 2, "went through the same thing", 0, ""),
    ("hope it gets better", 1, "hope it gets better", 0, "", 0, ""),
    ("have you tried talking to someone ?", 0, "", 0, "", 1, "have you tried talking"),
    ("thanks for sharing", 0, "", 1, "thanks for sharing", 0, ""),
    ("that sounds hard . how long have you been feeling this way ?", 1, "that sounds hard", 0, "", 2,
     "how long have you been feeling this way ?"),
]


def write_epitome_csvs(folder, n_pairs=120, seed=0):
    """Synthetic CSVs in the upstream format: the response decides each level (learnable)."""
    rng = random.Random(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for k in range(n_pairs):
        response = RESPONSES[k % len(RESPONSES)]
        rows.append((f"s{k // 2}", f"r{k}", rng.choice(SEEKERS), response))
    for mech, (lcol, rcol) in zip(("ER", "IP", "EX"), ((1, 2), (3, 4), (5, 6))):
        with open(folder / CSV_FILES[mech], "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["sp_id", "rp_id", "seeker_post", "response_post", "level", "rationales"])
            for sp, rp, seeker, response in rows:
                rationale = response[rcol]
                writer.writerow([sp, rp, seeker, response[0], response[lcol], f"{rationale}|" if rationale else ""])
    return folder


TINY_EPITOME_CONF = {
    "encoder": "tiny-test-encoder", "encoder_tag": None, "max_len": 24, "response_max_len": None,
    "split_seed": 12,
    "split_fractions": [0.75, 0.05, 0.20], "seed": 3, "lr": 3e-3, "epochs": 8, "batch_size": 8,
    "warmup_ratio": 0.0, "weight_decay": 0.0, "grad_clip": 1.0, "dropout": 0.0, "lambda_level": 1.0,
    "lambda_rationale": 0.5, "level_weighting": "none", "evals_per_epoch": 1, "select_on": "macro_f1",
    "average_best": 1,
    "responder_trainable_layers": None, "num_threads": 1, "num_jobs": 1, "eval_batch_size": 16, "mechanisms": ["ER", "IP", "EX"],
}


def write_responses(path, records):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def synthetic_system_outputs(n=60, seed=0):
    """Stage-5 records of three systems; RE-LLM answers more empathetically and recognises more emotions."""
    from rellm.data.emotions import EMOTIONS

    rng = random.Random(seed)
    plain = ["thanks for sharing", "it will be fine", "have you tried talking to someone ?"]
    empathic = ["i am so sorry to hear that . are you okay ?", ("that sounds hard . how long have you been feeling "
                "this way ?"), "so sorry . what happened ?"]
    systems = {"text_only": [], "blsp_emo": [], "rellm": []}
    for k in range(n):
        emotion = EMOTIONS[k % len(EMOTIONS)]
        base = {"utt_id": f"utt{k:03d}", "transcript": rng.choice(SEEKERS), "emotion": emotion, "ser_output": ""}
        wrong = EMOTIONS[(k + 1) % len(EMOTIONS)]
        systems["text_only"].append({**base, "response": rng.choice(plain), "ser_pred": "unknown"})
        systems["blsp_emo"].append({**base, "response": rng.choice(plain + empathic[:1]),
                                    "ser_pred": emotion if rng.random() < 0.6 else wrong})
        systems["rellm"].append({**base, "response": rng.choice(empathic),
                                 "ser_pred": emotion if rng.random() < 0.85 else rng.choice([wrong, "unknown"]),
                                 # the emotion head: right on every utterance but those of every 4th index
                                 "ser_head_pred": wrong if k % 4 == 0 else emotion})
    return systems
