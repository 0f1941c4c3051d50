"""EPITOME Reddit annotations: locating/fetching the CSVs, the fixed split, rationale token labels.

The three CSVs (ER, IP, EX) label the same 3,084 (seeker post, response) pairs.
They are research data that the project never commits: where the project's
``shared/epitome`` copy exists (``<repo root>/../shared/epitome``, or
``$RELLM_EPITOME_DIR``) it is read in place; otherwise ``fetch_csvs`` downloads
them from the upstream repository and refuses any file whose sha256 differs
from the published one.
"""
import csv
import hashlib
import os
import re
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rellm.utils.io import atomic_path

MECHANISMS = ("ER", "IP", "EX")
MECHANISM_NAMES = {"ER": "Emotional Reactions", "IP": "Interpretations", "EX": "Explorations"}
LEVELS = (0, 1, 2)  # none, weak, strong
CSV_FILES = {
    "ER": "emotional-reactions-reddit.csv",
    "IP": "interpretations-reddit.csv",
    "EX": "explorations-reddit.csv",
}
# Published checksums (shared/epitome/README.md) of upstream commit 0e11f98901527550885dbf253bd2af92dbcec43b.
CSV_SHA256 = {
    "emotional-reactions-reddit.csv": "225b28ffdc257f8a997d557eb937e78b68235e6203c87c7e2203d00fef8545cc",
    "interpretations-reddit.csv": "2cedbe4252c919d22a6f46685afa16d3192a91e3306c2d4a386be12a30ad3f29",
    "explorations-reddit.csv": "9efa1af8e0537c16894379598f2076cb380ae18aacd9a8d26ebd381f5b7f9645",
}
UPSTREAM_COMMIT = "0e11f98901527550885dbf253bd2af92dbcec43b"
UPSTREAM_URL = "https://raw.githubusercontent.com/behavioral-data/Empathy-Mental-Health/{commit}/dataset/{file}"
CSV_COLUMNS = ("sp_id", "rp_id", "seeker_post", "response_post", "level", "rationales")
REPO_ROOT = Path(__file__).resolve().parents[3]


def default_cache_root():
    """``$RELLM_CACHE`` or ``~/.cache/rellm`` (shared by every recipe)."""
    return Path(os.environ.get("RELLM_CACHE") or Path.home() / ".cache" / "rellm")


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _has_all_csvs(folder):
    return folder is not None and all((Path(folder) / name).is_file() for name in CSV_SHA256)


def find_data_dir(data_dir=None):
    """The folder holding the three CSVs: ``data_dir`` if given, else ``$RELLM_EPITOME_DIR``,
    else the project's ``<repo root>/../shared/epitome``, else the fetch cache.
    Returns None when none of them holds the files (run ``rellm.bin.epitome fetch``).
    """
    if data_dir:
        if not _has_all_csvs(data_dir):
            raise FileNotFoundError(
                f"{data_dir} does not hold the EPITOME CSVs ({', '.join(CSV_SHA256)}); "
                "run `python -m rellm.bin.epitome fetch` or point data_dir at the folder that has them"
            )
        return Path(data_dir)
    for folder in (os.environ.get("RELLM_EPITOME_DIR"), REPO_ROOT.parent / "shared" / "epitome",
                   default_cache_root() / "epitome" / "data"):
        if folder and _has_all_csvs(folder):
            return Path(folder)
    return None


def verify_csvs(folder):
    """Raise if any CSV in ``folder`` differs from the published sha256."""
    for name, expected in CSV_SHA256.items():
        actual = sha256_file(Path(folder) / name)
        if actual != expected:
            raise ValueError(
                f"{Path(folder) / name} has sha256 {actual}, expected {expected} (upstream commit "
                f"{UPSTREAM_COMMIT}); delete it and run `python -m rellm.bin.epitome fetch` again"
            )


def fetch_csvs(dest=None, commit=UPSTREAM_COMMIT, urlopen=urllib.request.urlopen):
    """Download the three CSVs from the pinned upstream commit into ``dest`` and verify them.

    A file already present with the right checksum is kept; a download with a
    wrong checksum is never written under its final name.
    """
    dest = Path(dest or default_cache_root() / "epitome" / "data")
    dest.mkdir(parents=True, exist_ok=True)
    for name, expected in CSV_SHA256.items():
        target = dest / name
        if target.is_file() and sha256_file(target) == expected:
            continue
        url = UPSTREAM_URL.format(commit=commit, file=name)
        with urlopen(url) as response:
            payload = response.read()
        actual = hashlib.sha256(payload).hexdigest()
        if actual != expected:
            raise ValueError(f"{url} returned data with sha256 {actual}, expected {expected}; not saved")
        with atomic_path(target) as tmp:
            Path(tmp).write_bytes(payload)
    return dest


@dataclass
class EpitomePairs:
    """One mechanism's annotations; ``ids`` are stable row ids ``r<row>-<sp_id>-<rp_id>``."""

    mechanism: str
    ids: list
    seeker: list
    response: list
    level: np.ndarray
    rationales: list  # per row: list of span strings (may be empty)
    groups: list = field(default_factory=list)  # (sp_id, rp_id): duplicated pairs share a group

    def __len__(self):
        return len(self.ids)

    def subset(self, ids):
        index = {i: k for k, i in enumerate(self.ids)}
        rows = [index[i] for i in ids]
        return EpitomePairs(
            self.mechanism,
            [self.ids[r] for r in rows],
            [self.seeker[r] for r in rows],
            [self.response[r] for r in rows],
            self.level[rows],
            [self.rationales[r] for r in rows],
            [self.groups[r] for r in rows],
        )


def load_pairs(mechanism, data_dir):
    """Read one mechanism's CSV; a missing column or a level outside 0..2 is an error."""
    if mechanism not in CSV_FILES:
        raise ValueError(f"unknown EPITOME mechanism {mechanism!r}; expected one of {', '.join(MECHANISMS)}")
    path = Path(data_dir) / CSV_FILES[mechanism]
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path} lacks column(s) {missing}; is it the upstream EPITOME CSV?")
        rows = list(reader)
    ids, levels = [], []
    for k, row in enumerate(rows):
        ids.append(f"r{k:05d}-{row['sp_id']}-{row['rp_id']}")
        level = int(row["level"])
        if level not in LEVELS:
            raise ValueError(f"{path} row {k + 2}: level {level} is not 0, 1 or 2")
        levels.append(level)
    return EpitomePairs(
        mechanism=mechanism,
        ids=ids,
        seeker=[r["seeker_post"] for r in rows],
        response=[r["response_post"] for r in rows],
        level=np.asarray(levels, dtype=np.int64),
        rationales=[[s.strip() for s in (r["rationales"] or "").split("|") if s.strip()] for r in rows],
        groups=[(r["sp_id"], r["rp_id"]) for r in rows],
    )


def stratified_split(pairs, fractions=(0.75, 0.05, 0.20), seed=12):
    """A fixed train/dev/test split of ``pairs`` ids, stratified by level, grouped by (sp_id, rp_id).

    61 pairs occur twice in the CSVs (sometimes with different levels); all rows of
    one pair go to the same part so that no test pair is seen in training. Each
    group is stratified by the level of its first row. Deterministic for a seed.
    """
    if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"split fractions must be three numbers summing to 1, got {fractions}")
    first_row = {}
    for row, group in enumerate(pairs.groups):
        first_row.setdefault(group, row)
    rng = np.random.default_rng(seed)
    parts = {"train": [], "dev": [], "test": []}
    groups_by_level = {}
    for group, row in first_row.items():
        groups_by_level.setdefault(int(pairs.level[row]), []).append(group)
    for level in sorted(groups_by_level):
        groups = groups_by_level[level]
        order = rng.permutation(len(groups))
        n_test = round(fractions[2] * len(groups))
        n_dev = round(fractions[1] * len(groups))
        for rank, g in enumerate(order):
            part = "test" if rank < n_test else "dev" if rank < n_test + n_dev else "train"
            parts[part].append(groups[g])
    members = {}
    for row, group in enumerate(pairs.groups):
        members.setdefault(group, []).append(pairs.ids[row])
    return {name: sorted(i for g in groups for i in members[g]) for name, groups in parts.items()}


def _span_pattern(span):
    """Regex for a rationale span that tolerates the whitespace the annotation tool collapsed."""
    words = span.split()
    return re.compile(r"\s+".join(re.escape(w) for w in words), flags=re.IGNORECASE)


def rationale_char_mask(response, spans):
    """Per-character 0/1 marks of ``spans`` in ``response`` plus the spans not found."""
    marks = np.zeros(len(response), dtype=np.int8)
    not_found = []
    for span in spans:
        if not span.split():
            continue
        found = False
        for match in _span_pattern(span).finditer(response):
            marks[match.start():match.end()] = 1
            found = True
        if not found:
            not_found.append(span)
    return marks, not_found


def rationale_token_labels(response, spans, offsets, special_mask):
    """Token-level rationale labels for one tokenised response.

    ``offsets`` are the tokenizer's character offsets, ``special_mask`` marks
    [CLS]/[SEP]-like tokens (always label 0). A token is in the rationale when
    any of its characters lies inside a matched span. Upstream convention
    (docs/evaluation.md#epitome-classifiers): a response without rationale has every (non-special) token
    labelled 1. Returns ``(labels, spans_not_found)``.
    """
    if not spans:
        return [0 if special else 1 for special in special_mask], []
    marks, not_found = rationale_char_mask(response, spans)
    labels = []
    for (start, end), special in zip(offsets, special_mask):
        labels.append(0 if special or end <= start else int(marks[start:end].any()))
    return labels, not_found


def level_counts(levels):
    counts = Counter(int(x) for x in levels)
    return [counts.get(level, 0) for level in LEVELS]


def tokenize_texts(tokenizer, texts, max_len):
    """Token ids (with special tokens, truncated to ``max_len``) for each text, no padding."""
    enc = tokenizer(list(texts), truncation=True, max_length=max_len, add_special_tokens=True)
    return [list(ids) for ids in enc["input_ids"]]


def encode_responses_with_rationales(tokenizer, responses, rationales, max_len):
    """Response token ids and rationale labels, plus a report of spans lost.

    Needs a fast tokenizer (character offsets). ``report`` counts the spans not
    found in their response and those cut off by the ``max_len`` truncation,
    with the first few examples, so nothing is dropped silently.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("EPITOME rationale labels need a fast (Rust) tokenizer with offset mapping; "
                         f"{type(tokenizer).__name__} is not one")
    enc = tokenizer(list(responses), truncation=True, max_length=max_len, add_special_tokens=True,
                    return_offsets_mapping=True, return_special_tokens_mask=True)
    all_ids, all_labels = [], []
    report = {"spans": 0, "spans_not_found": 0, "rationales_cut_by_truncation": 0, "examples_not_found": [],
              "responses_truncated": 0}
    for k, (response, spans) in enumerate(zip(responses, rationales)):
        ids = list(enc["input_ids"][k])
        labels, not_found = rationale_token_labels(
            response, spans, enc["offset_mapping"][k], enc["special_tokens_mask"][k])
        report["spans"] += len(spans)
        report["spans_not_found"] += len(not_found)
        if not_found and len(report["examples_not_found"]) < 5:
            report["examples_not_found"].append({"response": response[:200], "span": not_found[0][:200]})
        content_end = max((e for (s, e), sp in zip(enc["offset_mapping"][k], enc["special_tokens_mask"][k])
                           if not sp), default=0)
        if len(response.rstrip()) > content_end:
            report["responses_truncated"] += 1
            if spans:
                marks, _ = rationale_char_mask(response, spans)
                report["rationales_cut_by_truncation"] += int(marks[content_end:].any())
        all_ids.append(ids)
        all_labels.append(labels)
    return all_ids, all_labels, report
