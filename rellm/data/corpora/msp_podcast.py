"""MSP-Podcast (UTD MSP lab, releases 1.8-1.12) -> stage-1 manifests of the official partitions.

Labels and partitions come from ``Labels/labels_consensus.csv`` (1.9+; the older
releases spell it ``labels_concensus.csv`` and call the development set
``Validation``). Columns: FileName, EmoClass, EmoAct, EmoVal, EmoDom, SpkrID,
Gender, Split_Set. Audio is ``Audios/<FileName>`` (``Audio/`` in some copies,
``Audios/Audios/`` after some extractions); transcripts ``Transcripts/<utt>.txt``.

Five classes are kept (N, H, A, S, U); contempt, disgust, fear, other and
no-agreement (C, D, F, O, X) are dropped and counted. Test3 has audio but no
public labels and is ignored. EmoAct/EmoVal/EmoDom are rater means on 1..7.
"""

import csv
import logging

from tqdm import tqdm

from rellm.data.corpora.common import (
    Candidate,
    CorpusError,
    CorpusInfo,
    DuplicateUtteranceError,
    find_corpus_dir,
    list_files,
    read_text,
    run_preparation,
    scale_rating,
)
from rellm.utils.config import ConfigError

logger = logging.getLogger(__name__)

INFO = CorpusInfo(
    name="MSP-Podcast",
    db_var="MSP_PODCAST",
    layout=(
        "  MSP-PODCAST-Publish-1.12/          (any name)\n"
        "    Audios/<FileName>.wav            (or Audio/)\n"
        "    Labels/labels_consensus.csv      (or labels_concensus.csv before release 1.9)\n"
        "    Transcripts/<utt>.txt\n"
        "    Partitions.txt, Speaker_ids.txt, ..."
    ),
    obtain="sign the academic licence of the UTD MSP lab "
    "(https://ecs.utdallas.edu/research/researchlabs/msp-lab/MSP-Podcast.html) and download the release",
)

SETS = ("train", "valid", "test1", "test2")
SPLIT_SETS = {"Train": "train", "Development": "valid", "Validation": "valid", "Test1": "test1", "Test2": "test2"}
UNLABELLED_SPLITS = {"Test3"}
LABEL_FILES = ("labels_consensus.csv", "labels_concensus.csv")
AUDIO_DIRS = ("Audios", "Audio")
CLASSES = {"N": "neutral", "H": "happy", "A": "angry", "S": "sad", "U": "surprise"}
COLUMNS = ("FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender", "Split_Set")
GENDERS = {"male": "M", "female": "F", "m": "M", "f": "F"}
UNKNOWN_SPEAKER = "unknown"


def looks_like_msp(folder):
    return any((folder / "Labels" / name).is_file() for name in LABEL_FILES)


def label_file(corpus_dir):
    for name in LABEL_FILES:
        if (corpus_dir / "Labels" / name).is_file():
            return corpus_dir / "Labels" / name
    raise CorpusError(f"no Labels/{' or Labels/'.join(LABEL_FILES)} in {corpus_dir}")


def audio_dir(corpus_dir):
    """The folder holding the wavs; ``Audios/Audios`` appears when the archive was unpacked into ``Audios``."""
    for name in AUDIO_DIRS:
        folder = corpus_dir / name
        if folder.is_dir():
            nested = folder / name
            if nested.is_dir() and not any(folder.glob("*.wav")):
                return nested
            return folder
    raise CorpusError(f"no {' or '.join(d + '/' for d in AUDIO_DIRS)} audio folder in {corpus_dir}")


def read_transcript(path, report):
    """One-line transcript, or ``None`` when the file is missing or empty."""
    try:
        text = read_text(path, report)
    except FileNotFoundError:
        return None
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if len(lines) > 1:
        report.note("multi_line_transcript_joined", path.name)
    return " ".join(lines) or None


def read_labels(path, report):
    """Rows of the consensus CSV keyed by utterance id; a duplicate FileName is an error."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise CorpusError(f"{path} lacks the column(s) {missing}; found {reader.fieldnames}")
        rows = {}
        for lineno, row in enumerate(reader, 2):
            name = (row["FileName"] or "").strip()
            if not name:
                report.drop("malformed_label_row", f"{path.name}:{lineno}")
                continue
            utt = name[:-4] if name.lower().endswith(".wav") else name
            if utt in rows:
                raise DuplicateUtteranceError(f"{utt} has two rows in {path} (lines {rows[utt][0]} and {lineno})")
            rows[utt] = (lineno, name, row)
    return rows


def parse_row(utt, row, report):
    """``(set, emotion, (arousal, valence, dominance), speaker, gender)`` or ``None`` when dropped."""
    split = (row["Split_Set"] or "").strip()
    if split in UNLABELLED_SPLITS:
        report.skip(f"{split.lower()}_row_without_public_labels", utt)
        return None
    if split not in SPLIT_SETS:
        report.drop(f"unknown_split_{split or 'empty'}", utt)
        return None
    code = (row["EmoClass"] or "").strip().upper()
    if code not in CLASSES:
        report.drop(f"class_{code or 'empty'}_not_used", utt)
        return None
    avd = []
    for column in ("EmoAct", "EmoVal", "EmoDom"):
        value = (row[column] or "").strip()
        if value.lower() in ("", "nan", "na", "none"):
            report.note(f"{column}_missing_kept_as_null", utt)
            avd.append(None)
            continue
        try:
            avd.append(scale_rating(value, 1.0, 7.0))
        except ValueError:
            report.drop("attribute_not_a_rating_in_1_to_7", f"{utt}: {column}={value}")
            return None
    speaker = (row["SpkrID"] or "").strip()
    if not speaker or speaker.lower() == "unknown":
        report.note("unknown_speaker", utt)
        speaker = UNKNOWN_SPEAKER
    gender = GENDERS.get((row["Gender"] or "").strip().lower())
    return SPLIT_SETS[split], CLASSES[code], avd, speaker, gender


def collect_msp(root, require_transcript, report):
    corpus_dir = find_corpus_dir(root, looks_like_msp, INFO)
    labels_path = label_file(corpus_dir)
    wav_dir = audio_dir(corpus_dir)
    transcripts_dir = corpus_dir / "Transcripts"
    if not transcripts_dir.is_dir():
        report.warn(f"{transcripts_dir} is missing: no utterance has a transcript")
    logger.info("labels from %s, audio from %s", labels_path, wav_dir)
    rows = read_labels(labels_path, report)
    candidates = []
    for utt, (_lineno, _name, row) in tqdm(rows.items(), desc="reading labels", unit="utt", mininterval=2.0):
        parsed = parse_row(utt, row, report)
        if parsed is None:
            continue
        set_name, emotion, (arousal, valence, dominance), speaker, gender = parsed
        text = read_transcript(transcripts_dir / f"{utt}.txt", report)
        if text is None and require_transcript:
            report.drop("no_transcript", utt)
            continue
        if text is None:
            report.note("kept_without_transcript", utt)
        candidates.append(
            Candidate(
                utt_id=utt,
                set_name=set_name,
                wav=wav_dir / f"{utt}.wav",
                transcript=text or "",
                emotion=emotion,
                arousal=arousal,
                valence=valence,
                dominance=dominance,
                speaker=speaker,
                gender=gender,
            )
        )
    for wav in list_files(wav_dir, ".wav", report, "macos_junk_file"):
        if wav.stem not in rows:
            reason = "test3_audio_without_public_labels" if "test3" in wav.stem.lower() else "audio_without_label"
            report.skip(reason, wav.name)
    return corpus_dir, candidates


def prepare_msp_podcast(
    data_folder,
    save_folder,
    split="official",
    min_duration=1.0,
    max_duration=30.0,
    duration_filter_sets=("train", "valid"),
    require_transcript=True,
    overwrite=False,
    skip_prep=False,
):
    """Write ``train/valid/test1/test2.json`` of the official MSP-Podcast partitions.

    A/V/D are ``(x - 1) / 6`` of EmoAct/EmoVal/EmoDom. Returns the report (``None`` with ``skip_prep``).
    """
    if split != "official":
        raise ConfigError(f"MSP-Podcast has only the 'official' split, got {split!r}")
    return run_preparation(
        corpus="msp_podcast",
        data_folder=data_folder,
        save_folder=save_folder,
        info=INFO,
        options={"split": split, "require_transcript": bool(require_transcript)},
        set_names=SETS,
        collect=lambda root, report: collect_msp(root, require_transcript, report),
        min_duration=min_duration,
        max_duration=max_duration,
        duration_filter_sets=duration_filter_sets,
        overwrite=overwrite,
        skip_prep=skip_prep,
    )
