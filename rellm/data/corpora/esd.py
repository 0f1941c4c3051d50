"""ESD (Emotional Speech Dataset, Zhou et al. 2021) -> stage-1 manifests of the official split.

Utterances are enumerated from the wav files, never from the transcripts (some
transcript lines are broken). Two release layouts exist and both are read:

* flat:  ``<spk>/<Emotion>/<spk>_<NNNNNN>.wav``
* split: ``<spk>/<Emotion>/{train,evaluation,test}/<spk>_<NNNNNN>.wav``

The emotion is the folder name. The set comes from the utterance number, as the
official split defines it (within each block of 350: 1-20 evaluation -> ``valid``,
21-50 ``test``, 51-350 ``train``), so both layouts give identical manifests.

``<spk>/<spk>.txt`` holds ``utt_id TAB text TAB emotion`` lines, in a different
encoding per speaker (UTF-8, UTF-16 with BOM, GB2312/GBK, Latin-1), sometimes
space- instead of tab-separated, with Chinese emotion names for Mandarin speakers.
"""

import codecs
import collections
import logging
import re

from tqdm import tqdm

from rellm.data.corpora.common import (
    Candidate,
    CorpusInfo,
    CorpusNotFoundError,
    as_name_list,
    find_corpus_dir,
    is_hidden,
    list_files,
    not_found_message,
    run_preparation,
)
from rellm.utils.config import ConfigError

logger = logging.getLogger(__name__)

INFO = CorpusInfo(
    name="ESD",
    db_var="ESD",
    layout=(
        "  Emotion Speech Dataset/           (the folder inside 'Emotional Speech Dataset (ESD).zip')\n"
        "    0001/ ... 0020/                  (0001-0010 Mandarin, 0011-0020 English)\n"
        "      <spk>.txt                      (utt_id<TAB>text<TAB>emotion)\n"
        "      Angry/ Happy/ Neutral/ Sad/ Surprise/\n"
        "        <spk>_<NNNNNN>.wav  or  {train,evaluation,test}/<spk>_<NNNNNN>.wav"
    ),
    obtain="download 'Emotional Speech Dataset (ESD).zip' from the Google Drive link in "
    "https://github.com/HLTSingapore/Emotional-Speech-Data (free for research; licence in that README), "
    "then unzip it",
)

SETS = ("train", "valid", "test")
LANGUAGE_SPEAKERS = {
    "zh": tuple(f"{n:04d}" for n in range(1, 11)),
    "en": tuple(f"{n:04d}" for n in range(11, 21)),
}
# ReadMe.txt of the release (docs/datasets.md#esd).
SPEAKER_GENDER = {
    "0001": "F", "0002": "F", "0003": "F", "0004": "M", "0005": "M",
    "0006": "M", "0007": "F", "0008": "M", "0009": "F", "0010": "M",
    "0011": "M", "0012": "M", "0013": "M", "0014": "M", "0015": "F",
    "0016": "F", "0017": "F", "0018": "F", "0019": "F", "0020": "M",
}  # fmt: skip
EMOTION_FOLDERS = {"Neutral": "neutral", "Angry": "angry", "Happy": "happy", "Sad": "sad", "Surprise": "surprise"}
# Emotion names in the transcripts: the English folder names, and Chinese ones for 0001-0010.
TRANSCRIPT_EMOTIONS = {
    **{k.lower(): v for k, v in EMOTION_FOLDERS.items()},
    "中立": "neutral", "生气": "angry", "快乐": "happy", "伤心": "sad", "惊喜": "surprise",
}  # fmt: skip
BLOCK_EMOTIONS = ("neutral", "angry", "happy", "sad", "surprise")  # utterances 1-350, 351-700, ...
BLOCK = 350
SPLIT_FOLDERS = {"train", "evaluation", "test"}

WAV_RE = re.compile(r"^(?P<spk>\d{4})_(?P<num>\d{6})\.wav$")
LINE_RE = re.compile(r"^(?P<utt>\d{4}_\d{6})[\t ](?P<rest>.*)$")  # rest keeps empty tab fields
# Space-separated lines: the label is the last word, spelt exactly as in the release
# (case-sensitive, so a sentence ending in "sad" keeps its last word).
EMOTION_SUFFIX_RE = re.compile(
    r"^(?P<text>.*?)\s+(?P<emo>" + "|".join([*EMOTION_FOLDERS, "中立", "生气", "快乐", "伤心", "惊喜"]) + r")$"
)
CJK_RE = re.compile(r"[\u3400-\u9fff]")
# Strict decoders tried in order after the BOM check. cp1252 before latin-1: Windows
# editors save curly quotes as 0x91-0x94, which latin-1 would turn into C1 controls;
# latin-1 decodes any byte string, so it is the last resort.
FALLBACK_ENCODINGS = ("utf-8", "gbk", "cp1252", "latin-1")


def official_set(number):
    """Set of utterance ``number`` (1-based) in the official ESD split."""
    local = (number - 1) % BLOCK + 1
    if local <= 20:
        return "valid"
    if local <= 50:
        return "test"
    return "train"


def speakers_for(languages):
    langs = as_name_list(languages, "esd_languages")
    bad = [lang for lang in langs if lang not in LANGUAGE_SPEAKERS]
    if bad or not langs:
        raise ConfigError(f"esd_languages must be a comma-separated subset of en,zh; got {languages!r}")
    return sorted({spk for lang in langs for spk in LANGUAGE_SPEAKERS[lang]}), sorted(set(langs))


def _plausible(text, speaker):
    """Does ``text`` read as this speaker's transcript (ids at line starts, the right script)?"""
    lines = [ln.lstrip("\ufeff") for ln in text.splitlines() if ln.strip()]
    if not lines:
        return False
    with_id = sum(1 for ln in lines if ln.startswith(f"{speaker}_"))
    if with_id < max(1, len(lines) // 2):
        return False
    has_cjk = bool(CJK_RE.search(text))
    mandarin = speaker in LANGUAGE_SPEAKERS["zh"]
    # A Latin-1 English file can decode "successfully" as GBK into Chinese characters,
    # and a GB2312 file would decode as Latin-1 into mojibake: the script tells them apart.
    return has_cjk if mandarin else not has_cjk


def decode_transcript(raw, speaker):
    """``(text, encoding)`` of a transcript file's bytes, or ``(None, None)`` if nothing fits."""
    for bom, codec in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if raw.startswith(bom):
            try:
                return raw.decode(codec), codec
            except UnicodeDecodeError:
                text = raw.decode(codec, errors="replace")
                return (text, f"{codec}+replace") if _plausible(text, speaker) else (None, None)
    candidates = list(FALLBACK_ENCODINGS)
    if raw[:200].count(b"\x00") > len(raw[:200]) // 4:  # UTF-16 without a BOM
        candidates = ["utf-16-le", "utf-16-be"] + candidates
    for codec in candidates:
        try:
            text = raw.decode(codec)
        except UnicodeDecodeError:
            continue
        if _plausible(text, speaker):
            return text, codec
    # A few bad bytes (a truncated GBK pair) must not cost a speaker all 1,750 transcripts:
    # accept the first codec that fits once undecodable bytes become U+FFFD (the caller reports it).
    for codec in ("utf-8", "gbk", "utf-16-le", "utf-16-be"):
        text = raw.decode(codec, errors="replace")
        if _plausible(text, speaker):
            return text, f"{codec}+replace"
    return None, None


def parse_transcript_line(line):
    """``(utt_id, text, emotion or None)`` of one line, or ``None`` if it has no id or no text.

    Tab-separated lines are the norm; space-separated ones are split by the known
    emotion names at the end (the text itself may contain spaces).
    """
    match = LINE_RE.match(line.lstrip("\ufeff \t").rstrip())
    if not match:
        return None
    utt, rest = match.group("utt"), match.group("rest")
    fields = [f.strip() for f in rest.split("\t")]
    rest = rest.strip()
    if len(fields) >= 2 and fields[-1].lower() in TRANSCRIPT_EMOTIONS:
        text, emotion = " ".join(f for f in fields[:-1] if f), TRANSCRIPT_EMOTIONS[fields[-1].lower()]
    else:
        suffix = EMOTION_SUFFIX_RE.match(rest)
        if suffix:
            text, emotion = suffix.group("text").strip(), TRANSCRIPT_EMOTIONS[suffix.group("emo").lower()]
        else:
            text, emotion = " ".join(f for f in fields if f), None
    if not text:
        return None
    return utt, text, emotion


def read_transcript(path, speaker, report):
    """``{utt_id: (text, emotion or None)}`` of one speaker; problems are counted."""
    if not path.is_file():
        report.warn(f"ESD transcript {path} is missing: every utterance of speaker {speaker} lacks a transcript")
        return {}
    text, codec = decode_transcript(path.read_bytes(), speaker)
    if text is None:
        report.warn(f"cannot decode {path} as UTF-8/16, GBK or Latin-1 transcript lines of speaker {speaker}")
        return {}
    logger.info("%s: transcripts read as %s", path.name, codec)
    if codec.endswith("+replace"):
        report.note("transcript_file_with_undecodable_bytes", f"{path.name} ({codec.split('+')[0]})")
    out = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parsed = parse_transcript_line(line)
        if parsed is None:
            report.skip("malformed_transcript_line", f"{path.name}:{lineno}: {line.strip()[:60]}")
            continue
        utt, words, emotion = parsed
        if not utt.startswith(f"{speaker}_"):
            report.skip("transcript_line_of_another_speaker", f"{path.name}:{lineno}: {utt}")
            continue
        if utt in out:
            report.skip("repeated_transcript_line_first_kept", f"{path.name}:{lineno}: {utt}")
            continue
        if emotion is None:
            report.note("transcript_line_without_emotion", f"{path.name}:{lineno}: {utt}")
        out[utt] = (words, emotion)
    return out


def speaker_wavs(spk_dir, report):
    """``[(wav path, emotion folder, split subfolder or None)]`` of one speaker, in both layouts."""
    found = []
    for entry in sorted(spk_dir.iterdir()):
        if is_hidden(entry.name):
            report.skip("macos_junk_file", entry)
        elif entry.is_dir() and entry.name in EMOTION_FOLDERS:
            for wav in list_files(entry, ".wav", report, "macos_junk_file"):
                found.append((wav, entry.name, None))
            for sub in sorted(p for p in entry.iterdir() if p.is_dir()):
                if is_hidden(sub.name):
                    report.skip("macos_junk_file", sub)
                elif sub.name in SPLIT_FOLDERS:
                    found.extend(
                        (wav, entry.name, sub.name) for wav in list_files(sub, ".wav", report, "macos_junk_file")
                    )
                else:
                    report.skip("unexpected_folder", sub)
        elif entry.is_dir():
            report.skip("unexpected_folder", entry)
    return found


def looks_like_esd(folder):
    return any((folder / spk).is_dir() for spk in SPEAKER_GENDER)


def collect_speaker(spk_dir, speaker, require_transcript, report):
    """Candidates of one speaker, and how many well-named wavs each emotion folder holds."""
    transcripts = read_transcript(spk_dir / f"{speaker}.txt", speaker, report)
    candidates, per_folder = [], collections.Counter()
    wavs = speaker_wavs(spk_dir, report)
    for wav, folder, subfolder in wavs:
        match = WAV_RE.match(wav.name)
        if not match or match.group("spk") != speaker:
            report.drop("unexpected_file_name", wav)
            continue
        per_folder[folder] += 1
        utt, number = wav.stem, int(match.group("num"))
        emotion = EMOTION_FOLDERS[folder]
        set_name = official_set(number)
        if not 1 <= number <= BLOCK * len(BLOCK_EMOTIONS):
            report.note("utterance_number_outside_1_1750", utt)
        elif BLOCK_EMOTIONS[(number - 1) // BLOCK] != emotion:
            report.note("emotion_folder_differs_from_number_block", f"{utt} in {folder}")
        if subfolder is not None and {"evaluation": "valid"}.get(subfolder, subfolder) != set_name:
            report.note("split_folder_differs_from_official_split", f"{utt} in {folder}/{subfolder}")
        text, text_emotion = transcripts.get(utt, (None, None))
        if text is None and require_transcript:
            report.drop("no_transcript", utt)
            continue
        if text is None:
            report.note("kept_without_transcript", utt)
        if text_emotion is not None and text_emotion != emotion:
            report.note("transcript_emotion_differs_from_folder", f"{utt}: {text_emotion} vs {folder}")
        candidates.append(
            Candidate(
                utt_id=utt,
                set_name=set_name,
                wav=wav,
                transcript=text or "",
                emotion=emotion,
                arousal=None,
                valence=None,
                dominance=None,
                speaker=speaker,
                gender=SPEAKER_GENDER[speaker],
            )
        )
    for utt in sorted(set(transcripts) - {wav.stem for wav, _, _ in wavs}):
        report.drop("missing_audio", f"{utt} (in {speaker}.txt, no wav in any emotion folder)")
    return candidates, per_folder


def prepare_esd(
    data_folder,
    save_folder,
    split="official",
    esd_languages="en",
    min_duration=1.0,
    max_duration=30.0,
    duration_filter_sets=("train", "valid"),
    require_transcript=True,
    overwrite=False,
    skip_prep=False,
):
    """Write ``train/valid/test.json`` of the official ESD split for ``esd_languages`` (en, zh or en,zh).

    No dimensional labels (arousal/valence/dominance are null); stage 2 adds pseudo-labels.
    Returns the report (``None`` with ``skip_prep``).
    """
    if split != "official":
        raise ConfigError(f"ESD has only the 'official' split, got {split!r}")
    speakers, languages = speakers_for(esd_languages)

    def collect(root, report):
        corpus_dir = find_corpus_dir(root, looks_like_esd, INFO)
        present = [spk for spk in speakers if (corpus_dir / spk).is_dir()]
        if not present:
            raise CorpusNotFoundError(
                not_found_message(INFO, f"none of the speakers {speakers[0]}-{speakers[-1]} is in {corpus_dir}")
            )
        missing = sorted(set(speakers) - set(present))
        if missing:
            report.warn(f"ESD speaker(s) {', '.join(missing)} missing from {corpus_dir}: not in the manifests")
        for entry in sorted(corpus_dir.iterdir()):
            if entry.is_dir() and entry.name in SPEAKER_GENDER and entry.name not in speakers:
                report.skip("speaker_of_unselected_language", entry.name)
        candidates, off = [], []
        for spk in tqdm(present, desc="ESD speakers", unit="spk"):
            found, per_folder = collect_speaker(corpus_dir / spk, spk, require_transcript, report)
            candidates.extend(found)
            off += [
                f"{spk}/{folder}: {per_folder.get(folder, 0)}"
                for folder in EMOTION_FOLDERS
                if per_folder.get(folder, 0) != BLOCK
            ]
        if off:
            report.warn(
                f"!!! ESD COUNT MISMATCH: the release has {BLOCK} wavs per speaker and emotion, found "
                f"{'; '.join(off[:10])}{' ...' if len(off) > 10 else ''} ({len(off)} speaker/emotion folders off). "
                f"The copy looks incomplete; re-extract it before comparing results !!!"
            )
        return corpus_dir, candidates

    return run_preparation(
        corpus="esd",
        data_folder=data_folder,
        save_folder=save_folder,
        info=INFO,
        options={"split": split, "esd_languages": languages, "require_transcript": bool(require_transcript)},
        set_names=SETS,
        collect=collect,
        min_duration=min_duration,
        max_duration=max_duration,
        duration_filter_sets=duration_filter_sets,
        overwrite=overwrite,
        skip_prep=skip_prep,
    )
