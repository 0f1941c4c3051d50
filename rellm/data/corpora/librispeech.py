"""LibriSpeech (ASR, read English) for training step 1, the semantic alignment (docs/method.md#training-steps).

BLSP-Emo's step 1 runs on a large ASR corpus (the released example: GigaSpeech), not on the SER
corpus. Any corpus in LibriSpeech's public layout works::

    LibriSpeech/
      SPEAKERS.TXT                               (optional: ID | SEX | SUBSET | MINUTES | NAME)
      train-clean-100/<speaker>/<chapter>/
        <speaker>-<chapter>.trans.txt            (<speaker>-<chapter>-<nnnn> TRANSCRIPT, one per line)
        <speaker>-<chapter>-<nnnn>.flac
      dev-clean/...

Sets: ``train`` (the ``train_subsets``) and ``valid`` (the ``valid_subsets``). There is no emotion
label (``emotion`` null) and no A/V/D: stage 3 writes only ``continuation.jsonl`` for these sets.
"""
import re

from tqdm import tqdm

from rellm.data.corpora.common import (
    Candidate,
    CorpusInfo,
    CorpusNotFoundError,
    as_name_list,
    find_corpus_dir,
    list_files,
    not_found_message,
    read_text,
    run_preparation,
)
from rellm.utils.config import ConfigError

INFO = CorpusInfo(
    name="LibriSpeech",
    db_var="LIBRISPEECH",
    layout=(
        "  LibriSpeech/\n"
        "    train-clean-100/ dev-clean/ ...   (the subsets named by train_subsets / valid_subsets)\n"
        "      <speaker>/<chapter>/<speaker>-<chapter>.trans.txt and <speaker>-<chapter>-<nnnn>.flac"
    ),
    obtain="https://www.openslr.org/12 (CC BY 4.0; e.g. train-clean-100.tar.gz and dev-clean.tar.gz)",
)
SETS = ("train", "valid")
UTT_RE = re.compile(r"^(\d+)-(\d+)-(\d+)$")


def looks_like_librispeech(folder):
    """A folder holding at least one subset folder laid out as <speaker>/<chapter>/*.trans.txt."""
    for subset in sorted(p for p in folder.iterdir() if p.is_dir()):
        for speaker in sorted(p for p in subset.iterdir() if p.is_dir() and p.name.isdigit())[:1]:
            for chapter in sorted(p for p in speaker.iterdir() if p.is_dir())[:1]:
                if any(chapter.glob("*.trans.txt")):
                    return True
    return False


def read_speaker_genders(corpus_dir, report):
    """``{speaker: "F" | "M"}`` from SPEAKERS.TXT when present (``;`` starts a comment line)."""
    path = corpus_dir / "SPEAKERS.TXT"
    if not path.is_file():
        report.note("no_SPEAKERS.TXT_gender_unknown", path)
        return {}
    genders = {}
    for line in read_text(path, report).splitlines():
        if line.startswith(";") or "|" not in line:
            continue
        fields = [f.strip() for f in line.split("|")]
        if len(fields) >= 2 and fields[1] in ("F", "M"):
            genders[fields[0]] = fields[1]
    return genders


def sentence_case(text):
    """LibriSpeech transcripts are upper case without punctuation; the text LLM reads them as a sentence."""
    text = text.strip().lower()
    text = re.sub(r"\bi\b", "I", text)
    return text[:1].upper() + text[1:]


def collect_chapter(chapter_dir, set_name, genders, transcript_case, report):
    """Candidates of one chapter folder: every transcript line with its audio file."""
    found = []
    trans = list_files(chapter_dir, ".trans.txt")  # dot files are counted once, with the audio below
    if not trans:
        for audio in list_files(chapter_dir, ".flac", report):
            report.drop("no_transcript_file", audio)
        return found
    listed = set()
    for path in trans:
        for line in read_text(path, report).splitlines():
            if not line.strip():
                continue
            utt_id, _, text = line.strip().partition(" ")
            if not UTT_RE.match(utt_id) or not text.strip():
                report.skip("malformed_transcript_line", f"{path.name}: {line[:60]}")
                continue
            listed.add(utt_id)
            speaker = utt_id.split("-")[0]
            found.append(Candidate(
                utt_id=utt_id, set_name=set_name, wav=chapter_dir / f"{utt_id}.flac",
                transcript=sentence_case(text) if transcript_case == "sentence" else text.strip(),
                emotion=None, arousal=None, valence=None, dominance=None,
                speaker=speaker, gender=genders.get(speaker),
            ))
    for audio in list_files(chapter_dir, ".flac", report):
        if audio.stem not in listed:
            report.drop("audio_without_transcript_line", audio)
    return found


def prepare_librispeech(
    data_folder,
    save_folder,
    split="asr",
    train_subsets=("train-clean-100",),
    valid_subsets=("dev-clean",),
    transcript_case="sentence",
    min_duration=1.0,
    max_duration=30.0,
    duration_filter_sets=("train", "valid"),
    overwrite=False,
    skip_prep=False,
):
    """Write ``train.json`` / ``valid.json`` from LibriSpeech-layout subsets (speech + transcript, no labels).

    ``transcript_case``: ``sentence`` (lower case, first letter and "I" upper) or ``keep``.
    Returns the report (``None`` with ``skip_prep``).
    """
    train, valid = as_name_list(train_subsets, "train_subsets"), as_name_list(valid_subsets, "valid_subsets")
    if not train or not valid:
        raise ConfigError("train_subsets and valid_subsets must each name at least one LibriSpeech subset folder")
    if set(train) & set(valid):
        raise ConfigError(f"subset(s) {sorted(set(train) & set(valid))} are in both train_subsets and valid_subsets")
    if transcript_case not in ("sentence", "keep"):
        raise ConfigError(f"transcript_case must be sentence or keep, got {transcript_case!r}")

    def collect(root, report):
        corpus_dir = find_corpus_dir(root, looks_like_librispeech, INFO)
        genders = read_speaker_genders(corpus_dir, report)
        missing = [s for s in train + valid if not (corpus_dir / s).is_dir()]
        if missing:
            raise CorpusNotFoundError(not_found_message(INFO, f"subset folder(s) {', '.join(missing)} not in {corpus_dir}"))
        candidates = []
        for set_name, subsets in (("train", train), ("valid", valid)):
            for subset in subsets:
                speakers = [p for p in sorted((corpus_dir / subset).iterdir()) if p.is_dir() and p.name.isdigit()]
                for speaker in tqdm(speakers, desc=f"LibriSpeech {subset}", unit="spk"):
                    for chapter in sorted(p for p in speaker.iterdir() if p.is_dir()):
                        candidates += collect_chapter(chapter, set_name, genders, transcript_case, report)
        return corpus_dir, candidates

    return run_preparation(
        corpus="librispeech",
        data_folder=data_folder,
        save_folder=save_folder,
        info=INFO,
        options={"split": split, "train_subsets": list(train), "valid_subsets": list(valid),
                 "transcript_case": transcript_case},
        set_names=SETS,
        collect=collect,
        min_duration=min_duration,
        max_duration=max_duration,
        duration_filter_sets=duration_filter_sets,
        overwrite=overwrite,
        skip_prep=skip_prep,
    )
