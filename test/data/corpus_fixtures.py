"""Tiny copies of IEMOCAP, ESD and MSP-Podcast in their exact release layouts, with their traps.

A plain module (not conftest.py, which several test folders have) so that tests can
import its tables by a unique name. Each builder writes short generated wavs with
soundfile and returns the corpus root; the module-level tables say what each fixture
holds, so the tests can derive every expected count, label, split and A/V/D value.
"""

import csv

import numpy as np
import soundfile

SR = 16000
NORMAL_S = 1.2  # every wav lasts this long unless a table says otherwise
SHORT_S = 0.5  # below the default min_duration of 1 s


def write_wav(path, seconds=NORMAL_S, sr=SR):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(path.name))
    soundfile.write(path, 0.1 * rng.standard_normal(round(seconds * sr)).astype("float32"), sr, subtype="PCM_16")


def write_junk(path):
    """A macOS AppleDouble sidecar: binary, named like the real file with a ``._`` prefix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        \x00\x02" + bytes(range(256)))


# ---------------------------------------------------------------- IEMOCAP
# Per session n: (utterance suffix after "Ses0n", dialog suffix, code, [V, A, D]).
IEMOCAP_BASE = [
    ("F_impro01_F000", "F_impro01", "neu", (2.5, 2.5, 2.5)),
    ("F_impro01_M000", "F_impro01", "exc", (4.0, 3.5, 2.0)),
    ("F_impro01_F001", "F_impro01", "fru", (2.0, 3.5, 3.0)),
    ("F_impro01_M001", "F_impro01", "sur", (3.0, 4.0, 3.0)),
    ("F_impro01_F002", "F_impro01", "xxx", (2.5, 3.0, 3.0)),
    ("M_script01_1b_F000", "M_script01_1b", "ang", (1.5, 4.0, 4.5)),
    ("M_script01_1b_M000", "M_script01_1b", "sad", (2.0, 1.5, 2.0)),
]
# Traps, by session: each a labelled "neu" [2.5, 2.5, 2.5] turn Ses0nF_impro01_F0xx with a problem.
IEMOCAP_TRAPS = {
    1: {"F003": "no_wav", "F005": "short"},
    2: {"F003": "corrupt_wav"},
    3: {"F003": "empty_wav"},
    4: {"F003": "malformed_transcript"},
    5: {"F003": "short"},
}
IEMOCAP_AUDIO_WITHOUT_LABEL = "Ses02F_impro01_F009"
IEMOCAP_BRACES = ("Ses05F_impro01_F000", "I said {hello} there.")


def iemocap_text(utt):
    return dict([IEMOCAP_BRACES]).get(utt, f"Words of {utt}.")


def build_iemocap(root, sessions=(1, 2, 3, 4, 5)):
    for n in sessions:
        ses = root / f"Session{n}"
        emo_dir, trn_dir, wav_dir = (
            ses / "dialog" / "EmoEvaluation",
            ses / "dialog" / "transcriptions",
            ses / "sentences" / "wav",
        )
        turns = [(f"Ses0{n}{s}", f"Ses0{n}{d}", code, vad) for s, d, code, vad in IEMOCAP_BASE]
        traps = {f"Ses0{n}F_impro01_{k}": v for k, v in IEMOCAP_TRAPS.get(n, {}).items()}
        turns += [(utt, f"Ses0{n}F_impro01", "neu", (2.5, 2.5, 2.5)) for utt in traps]
        by_dialog = {}
        for utt, dialog, code, vad in turns:
            by_dialog.setdefault(dialog, []).append((utt, code, vad))
        for dialog, items in by_dialog.items():
            blocks, lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""], []
            for i, (utt, code, (v, a, d)) in enumerate(items):
                blocks += [
                    f"[{i * 3 + 1.0:.4f} - {i * 3 + 2.2:.4f}]\t{utt}\t{code}\t[{v:.4f}, {a:.4f}, {d:.4f}]",
                    "C-E2:\tNeutral;\t()",
                    "C-E3:\tAnger;\t()",
                    "A-E3:\tval 3; act 2; dom  2;\t()",
                    "",
                ]
                if traps.get(utt) == "malformed_transcript":
                    lines.append(f"{utt} [bad time]: this line has no proper times")
                else:
                    lines.append(f"{utt} [{i * 3 + 1.0:07.4f}-{i * 3 + 2.2:07.4f}]: {iemocap_text(utt)}")
                kind = traps.get(utt)
                wav = wav_dir / dialog / f"{utt}.wav"
                if kind == "no_wav":
                    pass
                elif kind == "corrupt_wav":
                    wav.parent.mkdir(parents=True, exist_ok=True)
                    wav.write_bytes(b"RIFF not really a wave file" * 10)
                elif kind == "empty_wav":
                    wav.parent.mkdir(parents=True, exist_ok=True)
                    wav.write_bytes(b"")
                else:
                    write_wav(wav, SHORT_S if kind == "short" else NORMAL_S)
            if dialog.endswith("F_impro01"):
                # a malformed summary line, an unlabelled XX turn and a non-utterance transcript line
                blocks += [f"[9.0000 - 9.5000]\t{dialog}_F010\tneu\t[2.5000, 2.5000]", ""]
                lines += ["M: Yeah.", f"{dialog}_MXX0 [030.0000-031.0000]: [LAUGHTER] Right."]
                # per-evaluator files that contradict the consensus (must be ignored)
                cat = emo_dir / "Categorical" / f"{dialog}_e2_cat.txt"
                cat.parent.mkdir(parents=True, exist_ok=True)
                cat.write_text(f"{dialog}_F001 :Neutral state; ()\n{dialog}_F002 :Anger; ()\n", encoding="utf-8")
                for sub in ("Attribute", "Self-evaluation"):
                    (emo_dir / sub).mkdir(parents=True, exist_ok=True)
                    (emo_dir / sub / f"{dialog}_e3_atr.txt").write_text(f"{dialog}_F001 :act 5; val 5;\n")
                write_junk(emo_dir / f"._{dialog}.txt")
                write_junk(trn_dir / f"._{dialog}.txt")
                write_junk(wav_dir / dialog / f"._{dialog}_F000.wav")
            emo_dir.mkdir(parents=True, exist_ok=True)
            trn_dir.mkdir(parents=True, exist_ok=True)
            (emo_dir / f"{dialog}.txt").write_text("\n".join(blocks) + "\n", encoding="utf-8")
            (trn_dir / f"{dialog}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        if n == 2:
            write_wav(wav_dir / "Ses02F_impro01" / f"{IEMOCAP_AUDIO_WITHOUT_LABEL}.wav")
        (ses / "dialog" / "wav").mkdir(parents=True, exist_ok=True)
    return root


# ---------------------------------------------------------------- ESD
ESD_FOLDERS = ("Neutral", "Angry", "Happy", "Sad", "Surprise")  # blocks 1-350, 351-700, ...
ESD_CHINESE = {"Neutral": "中立", "Angry": "生气", "Happy": "快乐", "Sad": "伤心", "Surprise": "惊喜"}
ESD_LOCAL_NUMBERS = (1, 20, 21, 50, 51, 350)  # valid, valid, test, test, train, train
# speaker -> (transcript encoding, layout)
ESD_SPEAKERS = {
    "0011": ("utf-8", "flat"),
    "0015": ("utf-16", "split"),
    "0016": ("latin-1", "flat"),
    "0001": ("gb2312", "split"),
    "0004": ("utf-8-sig", "flat"),
}
ESD_NO_TRANSCRIPT = "0011_000350"
ESD_SHORT = {"0015_000001": "valid", "0016_000021": "test"}
ESD_SPACE_SEPARATED = {"0016_000051", "0016_001101"}
ESD_MISFILED = "0015_000051"
ESD_LINE_WITHOUT_WAV = 100  # utterance number with a transcript line in every speaker's file but no wav  # in evaluation/ although the official split says train


def esd_text(utt):
    spk, num = utt.split("_")
    local = (int(num) - 1) % 350 + 1
    if spk in ("0001", "0004"):
        return f"打远一看，它们的确很是美丽{local}，"
    if spk == "0016":
        return f"Two cafés here, number {local}."  # é + 's' decodes as GBK too: the script check must reject it
    return f"The nine the eggs, I keep {local}."


def esd_utts(spk):
    out = []
    for block, folder in enumerate(ESD_FOLDERS):
        out += [(f"{spk}_{block * 350 + n:06d}", folder, n) for n in ESD_LOCAL_NUMBERS]
    return out


def build_esd(root, speakers=tuple(ESD_SPEAKERS), layout=None):
    """``layout`` ("flat" or "split") overrides the per-speaker layout of ``ESD_SPEAKERS``."""
    for spk in speakers:
        encoding, spk_layout = ESD_SPEAKERS[spk]
        spk_layout = layout or spk_layout
        lines = []
        for utt, folder, local in esd_utts(spk):
            sub = {1: "evaluation", 20: "evaluation", 21: "test", 50: "test"}.get(local, "train")
            if utt == ESD_MISFILED:
                sub = "evaluation"
            where = root / spk / folder / (sub if spk_layout == "split" else "")
            write_wav(where / f"{utt}.wav", SHORT_S if utt in ESD_SHORT else NORMAL_S)
            label = ESD_CHINESE[folder] if spk in ("0001", "0004") else folder
            if utt == ESD_NO_TRANSCRIPT:
                continue
            sep = " " if utt in ESD_SPACE_SEPARATED else "\t"
            lines.append(f"{utt}\t{esd_text(utt)}{sep}{label}" if sep == "\t" else f"{utt} {esd_text(utt)} {label}")
        lines.insert(3, "this line has no utterance id")
        orphan = f"{spk}_{ESD_LINE_WITHOUT_WAV:06d}"  # a transcript line whose wav is missing
        lines.append(
            f"{orphan}\t{esd_text(orphan)}\t{ESD_CHINESE['Neutral'] if spk in ('0001', '0004') else 'Neutral'}"
        )
        raw = ("\r\n".join(lines) + "\r\n").encode(encoding)
        (root / spk / f"{spk}.txt").write_bytes(raw)
        write_junk(root / spk / "Angry" / f"._{spk}_000351.wav")
        write_junk(root / spk / f"._{spk}.txt")
    (root / "ReadMe.txt").write_text("speaker list\n", encoding="utf-8")
    return root


# ---------------------------------------------------------------- MSP-Podcast
# FileName, EmoClass, EmoAct, EmoVal, EmoDom, SpkrID, Gender, Split_Set
MSP_ROWS = [
    ("MSP-PODCAST_0001_0008.wav", "N", "2.2", "4.0", "2.6", "30", "Male", "Test1"),
    ("MSP-PODCAST_0001_0009.wav", "H", "3.777778", "3.555556", "3.777778", "39", "Male", "Test1"),
    ("MSP-PODCAST_0002_0001.wav", "A", "6.4", "1.6", "5.8", "Unknown", "Unknown", "Train"),
    ("MSP-PODCAST_0002_0002.wav", "S", "1.0", "2.5", "3.0", "512", "Female", "Train"),
    ("MSP-PODCAST_0002_0003.wav", "U", "5.5", "5.0", "4.0", "512", "Female", "Development"),
    ("MSP-PODCAST_0002_0004.wav", "C", "4.0", "3.0", "4.0", "512", "Female", "Train"),
    ("MSP-PODCAST_0002_0005.wav", "D", "4.0", "3.0", "4.0", "512", "Female", "Train"),
    ("MSP-PODCAST_0002_0006.wav", "F", "4.0", "3.0", "4.0", "512", "Female", "Train"),
    ("MSP-PODCAST_0002_0007.wav", "O", "4.0", "3.0", "4.0", "512", "Female", "Development"),
    ("MSP-PODCAST_0002_0008.wav", "X", "4.0", "3.0", "4.0", "512", "Female", "Test1"),
    ("MSP-PODCAST_0003_0001.wav", "N", "4.0", "7.0", "1.0", "77", "Male", "Test2"),
    ("MSP-PODCAST_0003_0002.wav", "N", "4.0", "4.0", "4.0", "77", "Male", "Train"),  # no audio
    ("MSP-PODCAST_0003_0003.wav", "N", "4.0", "4.0", "4.0", "77", "Male", "Train"),  # no transcript
    ("MSP-PODCAST_0023_0319_0001.wav", "H", "5.0", "6.0", "4.0", "1024", "Female", "Train"),
    ("MSP-PODCAST_test3_0001.wav", "", "", "", "", "Unknown", "Unknown", "Test3"),
]
MSP_NO_AUDIO = "MSP-PODCAST_0003_0002"
MSP_NO_TRANSCRIPT = "MSP-PODCAST_0003_0003"
MSP_EXTRA_AUDIO = ("MSP-PODCAST_test3_0002.wav", "MSP-PODCAST_0009_0001.wav")  # no label row
MSP_MULTILINE = "MSP-PODCAST_0002_0002"
MSP_KEPT_CLASSES = {"N": "neutral", "H": "happy", "A": "angry", "S": "sad", "U": "surprise"}


def msp_text(utt):
    return f"Transcript of {utt} with {{braces}}."


def build_msp(root, old_release=False):
    """Release 1.9+ layout, or (``old_release``) labels_concensus.csv + Validation + Audio/."""
    audio = root / ("Audio" if old_release else "Audios")
    labels = root / "Labels" / ("labels_concensus.csv" if old_release else "labels_consensus.csv")
    labels.parent.mkdir(parents=True)
    with open(labels, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender", "Split_Set"])
        for row in MSP_ROWS:
            row = list(row)
            if old_release and row[7] == "Development":
                row[7] = "Validation"
            writer.writerow(row)
    (root / "Transcripts").mkdir()
    for name, *_ in MSP_ROWS:
        utt = name[:-4]
        if utt != MSP_NO_AUDIO:
            write_wav(audio / name)
        if "test3" in utt or utt == MSP_NO_TRANSCRIPT:
            continue
        text = msp_text(utt)
        if utt == MSP_MULTILINE:
            text = text.replace(" with ", "\nwith ")
        (root / "Transcripts" / f"{utt}.txt").write_text(text + "\n", encoding="utf-8")
    for name in MSP_EXTRA_AUDIO:
        write_wav(audio / name)
    write_junk(audio / "._MSP-PODCAST_0001_0008.wav")
    (root / "Partitions.txt").write_text("Train; MSP-PODCAST_0002_0001.wav\n", encoding="utf-8")
    return root


# ---------------------------------------------------------------- LibriSpeech
# (subset, speaker, chapter, [utterance numbers]); utterance text is librispeech_text(utt_id)
LIBRI_CHAPTERS = [
    ("train-clean-100", "19", "198", [0, 1, 2]),
    ("train-clean-100", "26", "495", [0, 4]),
    ("dev-clean", "84", "121123", [0, 1]),
    ("test-clean", "61", "70968", [0]),  # a subset nobody asked for: never read
]
LIBRI_SHORT = "19-198-0002"  # 0.5 s: dropped by the duration policy
LIBRI_NO_LINE = "26-495-0009"  # a flac without a transcript line
LIBRI_SPEAKERS = "; ID |SEX| SUBSET |MINUTES| NAME\n19 | F | train-clean-100 | 25.19 | Kara Shallenberg\n" \
                 "26 | M | train-clean-100 | 25.08 | Denny Sayers\n84 | F | dev-clean | 8.02 | Christie Nowak\n"


def librispeech_text(utt_id):
    return f"AND I SAW UTTERANCE {utt_id.replace('-', ' ')} IN THE OLD HOUSE"


def build_librispeech(root):
    """``root`` = the LibriSpeech/ folder of the release (what the tarballs unpack to)."""
    for subset, spk, chapter, utts in LIBRI_CHAPTERS:
        folder = root / subset / spk / chapter
        lines = []
        for n in utts:
            utt = f"{spk}-{chapter}-{n:04d}"
            write_wav(folder / f"{utt}.flac", SHORT_S if utt == LIBRI_SHORT else NORMAL_S)
            lines.append(f"{utt} {librispeech_text(utt)}")
        (folder / f"{spk}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    write_wav(root / "train-clean-100" / "26" / "495" / f"{LIBRI_NO_LINE}.flac")
    write_junk(root / "train-clean-100" / "19" / "198" / "._19-198-0000.flac")
    (root / "SPEAKERS.TXT").write_text(LIBRI_SPEAKERS, encoding="utf-8")
    return root
