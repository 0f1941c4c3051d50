"""IEMOCAP (USC SAIL, ``IEMOCAP_full_release``) -> stage-1 manifests for one leave-one-session-out fold.

Labels come only from the per-dialog consensus files ``dialog/EmoEvaluation/<dialog>.txt``
(never the per-evaluator ``Categorical/``, ``Attribute/``, ``Self-evaluation/`` subfolders,
never macOS ``._*`` sidecars); transcripts from ``dialog/transcriptions/<dialog>.txt``;
audio from ``sentences/wav/<dialog>/<utt>.wav``.

The speaker of a turn is the session plus the F/M letter of the utterance suffix:
``Ses01F_impro01_M003`` is spoken by ``Ses01M``. The letter after the session in the
dialog name is the actor who led the dialog, a known trap.

Fold N (speaker independent): ``test`` = all of Session N, ``valid`` = the male
speaker of session N-1 (Session 5 for N = 1), ``train`` = the other 7 speakers.
"""

import collections
import logging
import re

from rellm.data.corpora.common import (
    Candidate,
    CorpusInfo,
    DuplicateUtteranceError,
    find_corpus_dir,
    is_hidden,
    list_files,
    read_text,
    run_preparation,
    scale_rating,
)
from rellm.utils.config import ConfigError

logger = logging.getLogger(__name__)

INFO = CorpusInfo(
    name="IEMOCAP",
    db_var="IEMOCAP",
    layout=(
        "  IEMOCAP_full_release/\n"
        "    Session1/ ... Session5/\n"
        "      dialog/EmoEvaluation/<dialog>.txt    (consensus labels)\n"
        "      dialog/transcriptions/<dialog>.txt\n"
        "      sentences/wav/<dialog>/<utterance>.wav"
    ),
    obtain="request it from USC SAIL at https://sail.usc.edu/iemocap/ (free licence for research, "
    "signed release form), then unpack IEMOCAP_full_release.tar.gz",
)

SETS = ("train", "valid", "test")
NUM_SESSIONS = 5
CLASS_MAPS = {
    4: {"neu": "neutral", "hap": "happy", "exc": "happy", "ang": "angry", "sad": "sad"},
    5: {"neu": "neutral", "hap": "happy", "exc": "happy", "ang": "angry", "sad": "sad", "sur": "surprise"},
}
# Published counts of the full release (docs/datasets.md#iemocap): every labelled turn, and the
# turns in the 4 (5) classes. A full run that deviates means a damaged or partial copy.
EXPECTED_LABELLED = 10039
EXPECTED_IN_CLASSES = {4: 5531, 5: 5531 + 107}
EXPECTED_4_CLASS_PER_SESSION = {1: 1085, 2: 1023, 3: 1151, 4: 1031, 5: 1241}  # EmoBox fold files

# "[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]": [V, A, D] on 1..5.
SUMMARY_RE = re.compile(
    r"^\[\s*(?P<start>\d+(?:\.\d+)?)\s*-\s*(?P<end>\d+(?:\.\d+)?)\s*\]\s+(?P<utt>\S+)\s+(?P<code>\w+)\s+"
    r"\[\s*(?P<v>\d+(?:\.\d+)?),\s*(?P<a>\d+(?:\.\d+)?),\s*(?P<d>\d+(?:\.\d+)?)\s*\]\s*$"
)
# "Ses01F_impro02_F000 [007.2688-016.6000]: Did you get the mail?"
TRANSCRIPT_RE = re.compile(r"^(?P<utt>Ses\S+)\s+\[\s*[\d.]+\s*-\s*[\d.]+\s*\]:\s?(?P<text>.*)$")
# Ses01F_impro01_F000, Ses05M_script01_1b_M012, Ses03F_impro05_MXX0 (XX: unlabelled turn).
UTT_RE = re.compile(r"^Ses0(?P<session>[1-5])[FM]_\S+_(?P<letter>[FM])(?:XX|\d\d)\d$")


def parse_fold(split):
    """``"fold3"`` -> 3; anything else is an error listing the valid values."""
    match = re.fullmatch(r"fold([1-5])", str(split))
    if not match:
        raise ConfigError(f"IEMOCAP split must be fold1..fold5 (leave-one-session-out), got {split!r}")
    return int(match.group(1))


def speaker_of(utt_id):
    """``Ses01F_impro01_M003`` -> ``("Ses01M", "M", 1)``; ``None`` for an id of another shape."""
    match = UTT_RE.match(utt_id)
    if not match:
        return None
    session, letter = int(match.group("session")), match.group("letter")
    return f"Ses0{session}{letter}", letter, session


def fold_set(session, letter, fold):
    """The set of an utterance of ``session`` spoken by ``letter`` in leave-one-session-out ``fold``."""
    if session == fold:
        return "test"
    valid_session = NUM_SESSIONS if fold == 1 else fold - 1
    if session == valid_session and letter == "M":
        return "valid"
    return "train"


def read_emo_evaluation(path, report):
    """``{utt_id: (code, valence, arousal, dominance)}`` from one consensus file (1..5 ratings)."""
    labels = {}
    for lineno, line in enumerate(read_text(path, report).splitlines(), 1):
        if not line.startswith("["):
            continue  # header, blank lines and the per-evaluator C-/A- lines of the block
        match = SUMMARY_RE.match(line.strip())
        if not match:
            report.drop("malformed_label_line", f"{path.name}:{lineno}: {line.strip()[:80]}")
            continue
        if match.group("utt") in labels:
            raise DuplicateUtteranceError(f"{path}:{lineno}: {match.group('utt')} is labelled twice in this file")
        labels[match.group("utt")] = (
            match.group("code").lower(),
            float(match.group("v")),
            float(match.group("a")),
            float(match.group("d")),
        )
    return labels


def read_transcription(path, report):
    """``{utt_id: text}`` from one transcription file; non-utterance lines are counted."""
    texts = {}
    for lineno, line in enumerate(read_text(path, report).splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        match = TRANSCRIPT_RE.match(line)
        if match:
            texts[match.group("utt")] = match.group("text").strip()
        elif line.startswith("Ses"):  # its utterance is then dropped as no_transcript
            report.skip("malformed_transcript_line", f"{path.name}:{lineno}: {line[:80]}")
        else:  # "M: Yeah." style lines: no id, no times, no audio
            report.skip("transcript_line_without_utterance_id", f"{path.name}:{lineno}: {line[:80]}")
    return texts


def merge_per_dialog(folder, read, report):
    """Union of ``read(file)`` over the dialog files of ``folder``; an utterance in two files is an error."""
    merged, source = {}, {}
    for path in list_files(folder, ".txt", report, "macos_junk_file"):
        for utt, value in read(path, report).items():
            if utt in merged:
                raise DuplicateUtteranceError(
                    f"utterance {utt} is in both {source[utt]} and {path}; remove the stray copy and re-run"
                )
            merged[utt], source[utt] = value, path
    return merged


def looks_like_iemocap(folder):
    return any((folder / f"Session{n}").is_dir() for n in range(1, NUM_SESSIONS + 1))


def collect_session(session_dir, session, fold, n_classes, require_transcript, report):
    """Candidates of one ``SessionN`` folder and the number of labelled turns it has."""
    class_map = CLASS_MAPS[n_classes]
    labels = merge_per_dialog(session_dir / "dialog" / "EmoEvaluation", read_emo_evaluation, report)
    texts = merge_per_dialog(session_dir / "dialog" / "transcriptions", read_transcription, report)
    wav_root = session_dir / "sentences" / "wav"
    audio = {}
    if wav_root.is_dir():
        for dialog in sorted(p for p in wav_root.iterdir() if p.is_dir() and not is_hidden(p.name)):
            for wav in list_files(dialog, ".wav", report, "macos_junk_file"):
                audio[wav.stem] = wav
    if not labels:
        report.warn(f"{session_dir.name} has no consensus label file in dialog/EmoEvaluation/")

    candidates = []
    for utt in sorted(labels):
        code, valence, arousal, dominance = labels[utt]
        who = speaker_of(utt)
        if who is None or who[2] != session:
            report.drop("unexpected_utterance_id", f"{session_dir.name}: {utt}")
            continue
        if code not in class_map:
            report.drop(f"label_{code}_not_in_{n_classes}_classes", utt)
            continue
        text = texts.get(utt) or None  # an empty transcript line counts as none
        if text is None and require_transcript:
            report.drop("no_transcript", utt)
            continue
        if text is None:
            report.note("kept_without_transcript", utt)
        speaker, letter, _ = who
        # The file is expected at sentences/wav/<dialog>/<utt>.wav even when not listed,
        # so a missing one is dropped as missing_audio by the shared audio check.
        wav = audio.get(utt, wav_root / utt[:-5] / f"{utt}.wav")
        try:
            avd = [scale_rating(x, 1.0, 5.0) for x in (arousal, valence, dominance)]
        except ValueError as err:
            report.drop("rating_outside_1_to_5", f"{utt}: {err}")
            continue
        candidates.append(
            Candidate(
                utt_id=utt,
                set_name=fold_set(session, letter, fold),
                wav=wav,
                transcript=text or "",
                emotion=class_map[code],
                arousal=avd[0],
                valence=avd[1],
                dominance=avd[2],
                speaker=speaker,
                gender=letter,
            )
        )
    for utt in sorted(set(texts) - set(labels)):
        report.skip("transcript_without_label", utt)  # e.g. the *_MXX0 / *_FXX0 turns
    for utt in sorted(set(audio) - set(labels)):
        report.drop("audio_without_label", audio[utt])
    return candidates, len(labels)


def prepare_iemocap(
    data_folder,
    save_folder,
    split="fold5",
    iemocap_classes=4,
    min_duration=1.0,
    max_duration=30.0,
    duration_filter_sets=("train", "valid"),
    require_transcript=True,
    overwrite=False,
    skip_prep=False,
):
    """Write ``train/valid/test.json`` of leave-one-session-out fold ``split`` (fold1..fold5).

    ``iemocap_classes``: 4 (neu, hap+exc, ang, sad) or 5 (adds sur). Durations outside
    ``[min_duration, max_duration]`` seconds are dropped in ``duration_filter_sets`` only,
    so the test set stays the standard one. Returns the report (``None`` with ``skip_prep``).
    """
    fold = parse_fold(split)
    try:
        classes = int(iemocap_classes)
    except (TypeError, ValueError):
        classes = None
    if classes not in CLASS_MAPS:
        raise ConfigError(f"iemocap_classes must be 4 or 5, got {iemocap_classes!r}")
    counts = {}

    def collect(root, report):
        corpus_dir = find_corpus_dir(root, looks_like_iemocap, INFO)
        candidates, labelled = [], 0
        present = []
        for n in range(1, NUM_SESSIONS + 1):
            session_dir = corpus_dir / f"Session{n}"
            if not session_dir.is_dir():
                report.warn(f"{session_dir} is missing: its utterances are not in the manifests")
                continue
            present.append(n)
            found, n_labelled = collect_session(session_dir, n, fold, classes, require_transcript, report)
            candidates.extend(found)
            labelled += n_labelled
        if fold not in present:
            report.warn(f"Session{fold}, the test session of fold{fold}, is missing: the test set is empty")
        counts.update(full=len(present) == NUM_SESSIONS, labelled=labelled)
        return corpus_dir, candidates

    def check(sets, duration_dropped, report):
        if not counts["full"]:
            return
        # usable = written + dropped only by the duration policy (a protocol choice, not damage)
        per_session = collections.Counter(int(utt[4]) for s in sets.values() for utt in s)
        per_session.update(int(utt[4]) for utt in duration_dropped)
        in_classes = sum(per_session.values())
        expected = EXPECTED_IN_CLASSES[classes]
        if counts["labelled"] != EXPECTED_LABELLED or in_classes != expected:
            sessions = ""
            if classes == 4:
                off = [
                    f"Session{n} {per_session[n]} (release {want})"
                    for n, want in EXPECTED_4_CLASS_PER_SESSION.items()
                    if per_session[n] != want
                ]
                sessions = f" Sessions off: {', '.join(off)}."
            report.warn(
                f"!!! IEMOCAP COUNT MISMATCH: {counts['labelled']} labelled turns (full release: "
                f"{EXPECTED_LABELLED}) and {in_classes} usable {classes}-class utterances (full release: "
                f"{expected}).{sessions} The copy under the root looks damaged or incomplete; compare the "
                f"dropped reasons in prepare_report.json and re-extract the corpus before comparing results !!!"
            )

    return run_preparation(
        corpus="iemocap",
        data_folder=data_folder,
        save_folder=save_folder,
        info=INFO,
        options={"split": f"fold{fold}", "iemocap_classes": classes, "require_transcript": bool(require_transcript)},
        set_names=SETS,
        collect=collect,
        min_duration=min_duration,
        max_duration=max_duration,
        duration_filter_sets=duration_filter_sets,
        overwrite=overwrite,
        skip_prep=skip_prep,
        check=check,
    )
