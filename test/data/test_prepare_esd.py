"""ESD preparation on five speakers in both release layouts and four transcript encodings."""

import codecs
import shutil

import pytest
from corpus_fixtures import ESD_LOCAL_NUMBERS, NORMAL_S, SHORT_S, build_esd, esd_text

from rellm.data.corpora.common import DuplicateUtteranceError
from rellm.data.corpora.esd import decode_transcript, parse_transcript_line, prepare_esd
from rellm.data.manifest import read_manifest
from rellm.utils.config import ConfigError

OFFICIAL = {1: "valid", 20: "valid", 21: "test", 50: "test", 51: "train", 350: "train"}  # ESD_LOCAL_NUMBERS
FOLDERS = {0: "neutral", 1: "angry", 2: "happy", 3: "sad", 4: "surprise"}


def expected_ids(speakers, dropped=()):
    """``{set: ids}`` of the fixture speakers by the official rule, without ``dropped`` ids."""
    out = {"train": set(), "valid": set(), "test": set()}
    for spk in speakers:
        for block in FOLDERS:
            for n in ESD_LOCAL_NUMBERS:
                utt = f"{spk}_{block * 350 + n:06d}"
                if utt not in dropped:
                    out[OFFICIAL[n]].add(utt)
    return out


def load(save):
    return {name: read_manifest(save / f"{name}.json") for name in ("train", "valid", "test")}


def test_english_default(esd_root, tmp_path):
    report = prepare_esd(esd_root, tmp_path / "out")
    sets = load(tmp_path / "out")
    expected = expected_ids(["0011", "0015", "0016"], dropped={"0011_000350", "0015_000001"})
    assert {name: set(s) for name, s in sets.items()} == expected
    assert [len(expected[s]) for s in ("train", "valid", "test")] == [29, 29, 30]

    entry = sets["train"]["0015_000401"]  # split layout, Angry block, local number 51
    assert entry["wav"] == "{data_root}/0015/Angry/train/0015_000401.wav"
    assert (entry["emotion"], entry["speaker"], entry["gender"]) == ("angry", "0015", "F")
    assert (entry["arousal"], entry["valence"], entry["dominance"]) == (None, None, None)
    assert entry["transcript"] == esd_text("0015_000401")  # UTF-16 with BOM
    assert sets["valid"]["0011_000001"]["wav"] == "{data_root}/0011/Neutral/0011_000001.wav"  # flat layout
    assert sets["valid"]["0011_000001"]["gender"] == "M"
    assert sets["train"]["0016_000051"]["transcript"] == "Two cafés here, number 51."  # Latin-1, space-separated
    assert sets["train"]["0016_001101"]["transcript"] == "Two cafés here, number 51."
    assert sets["train"]["0016_001101"]["emotion"] == "sad"
    assert sets["test"]["0016_000021"]["duration"] == SHORT_S  # short, but test is not filtered
    assert sets["train"]["0011_000051"]["duration"] == NORMAL_S
    assert "0015_000051" in sets["train"]  # misfiled in evaluation/: the number decides
    for s in sets.values():
        for utt, e in s.items():
            assert e["emotion"] == FOLDERS[(int(utt[5:]) - 1) // 350]

    assert {k: v["count"] for k, v in report["dropped"].items()} == {
        "missing_audio": 3,  # the transcript line 0xxx_000100 of each speaker has no wav
        "no_transcript": 1,
        "shorter_than_1s_in_valid": 1,
    }
    assert report["dropped"]["missing_audio"]["examples"][0].startswith("0011_000100 (in 0011.txt")
    assert report["dropped"]["no_transcript"]["examples"] == ["0011_000350"]
    assert {k: v["count"] for k, v in report["skipped"].items()} == {
        "macos_junk_file": 6,
        "malformed_transcript_line": 3,
        "speaker_of_unselected_language": 2,
    }
    assert report["skipped"]["speaker_of_unselected_language"]["examples"] == ["0001", "0004"]
    assert report["notes"]["split_folder_differs_from_official_split"]["examples"] == [
        "0015_000051 in Neutral/evaluation"
    ]
    assert "transcript_emotion_differs_from_folder" not in report["notes"]
    assert any("COUNT MISMATCH" in w for w in report["warnings"])  # 6 wavs per folder instead of 350


def test_mandarin_speakers_with_chinese_labels(esd_root, tmp_path):
    report = prepare_esd(esd_root, tmp_path / "out", esd_languages="en,zh")
    sets = load(tmp_path / "out")
    expected = expected_ids(["0001", "0004", "0011", "0015", "0016"], dropped={"0011_000350", "0015_000001"})
    assert {name: set(s) for name, s in sets.items()} == expected
    assert sets["valid"]["0001_000001"]["transcript"] == "打远一看，它们的确很是美丽1，"  # GB2312
    assert sets["train"]["0004_001451"]["transcript"] == "打远一看，它们的确很是美丽51，"  # UTF-8 with BOM
    assert (sets["train"]["0004_001451"]["emotion"], sets["train"]["0004_001451"]["gender"]) == ("surprise", "M")
    assert sets["valid"]["0001_000001"]["gender"] == "F"
    assert "transcript_emotion_differs_from_folder" not in report["notes"]  # 中立/生气/... all understood
    assert report["options"]["esd_languages"] == ["en", "zh"]


def test_both_layouts_give_the_same_manifests(tmp_path):
    flat = build_esd(tmp_path / "flat", speakers=["0011"], layout="flat")
    split = build_esd(tmp_path / "split", speakers=["0011"], layout="split")
    prepare_esd(flat, tmp_path / "out_flat")
    prepare_esd(split, tmp_path / "out_split")
    for name in ("train", "valid", "test"):
        a, b = (
            read_manifest(tmp_path / "out_flat" / f"{name}.json"),
            read_manifest(tmp_path / "out_split" / f"{name}.json"),
        )
        assert a.keys() == b.keys() and a
        for utt in a:
            assert {k: v for k, v in a[utt].items() if k != "wav"} == {k: v for k, v in b[utt].items() if k != "wav"}
    assert b["0011_000021"]["wav"] == "{data_root}/0011/Neutral/test/0011_000021.wav"


def test_a_wav_in_both_layouts_is_a_duplicate(tmp_path):
    root = build_esd(tmp_path / "ESD", speakers=["0011"], layout="flat")
    (root / "0011" / "Angry" / "train").mkdir()
    shutil.copy(root / "0011" / "Angry" / "0011_000401.wav", root / "0011" / "Angry" / "train")
    with pytest.raises(DuplicateUtteranceError, match="0011_000401 appears twice"):
        prepare_esd(root, tmp_path / "out")


TEXT_EN = "0011_000001\tHe said \u201cwell\u201d, right.\tNeutral\n0011_000002\tNo.\tNeutral\n"
TEXT_ZH = "0001_000001\t打远一看，它们的确很是美丽，\t中立\n0001_000351\t打远一看。\t生气\n"


@pytest.mark.parametrize(
    ("raw", "speaker", "text"),
    [
        (TEXT_EN.encode("utf-8"), "0011", TEXT_EN),
        (codecs.BOM_UTF8 + TEXT_EN.encode("utf-8"), "0011", TEXT_EN),
        (TEXT_EN.encode("utf-16"), "0011", TEXT_EN),  # with BOM
        (TEXT_EN.encode("utf-16-le"), "0011", TEXT_EN),  # without BOM
        (TEXT_EN.encode("cp1252"), "0011", TEXT_EN),  # curly quotes as 0x93/0x94
        ("0016_000001\tTwo cafés.\tHappy\n".encode("latin-1"), "0016", "0016_000001\tTwo cafés.\tHappy\n"),
        (TEXT_ZH.encode("gb2312"), "0001", TEXT_ZH),
        (TEXT_ZH.encode("gbk"), "0001", TEXT_ZH),
        (TEXT_ZH.encode("utf-16"), "0001", TEXT_ZH),
        (TEXT_ZH.encode("utf-8"), "0001", TEXT_ZH),
    ],
)
def test_decode_transcript(raw, speaker, text):
    decoded, codec = decode_transcript(raw, speaker)
    assert decoded == text, codec


def test_a_few_bad_bytes_do_not_lose_the_file(tmp_path):
    root = build_esd(tmp_path / "ESD", speakers=["0001"])
    raw = (root / "0001" / "0001.txt").read_bytes()
    (root / "0001" / "0001.txt").write_bytes(raw + "0001_001750\t打远".encode("gbk") + b"\xff\r\n")
    report = prepare_esd(root, tmp_path / "out", esd_languages="zh")
    assert report["notes"]["transcript_file_with_undecodable_bytes"]["examples"] == ["0001.txt (gbk)"]
    valid = read_manifest(tmp_path / "out" / "valid.json")
    assert valid["0001_000001"]["transcript"] == "打远一看，它们的确很是美丽1，"


def test_repeated_transcript_line_keeps_the_first(tmp_path):
    root = build_esd(tmp_path / "ESD", speakers=["0011"])
    with open(root / "0011" / "0011.txt", "a", encoding="utf-8") as f:
        f.write("0011_000001\tA second text.\tNeutral\r\n")
    report = prepare_esd(root, tmp_path / "out")
    assert report["skipped"]["repeated_transcript_line_first_kept"]["count"] == 1
    assert read_manifest(tmp_path / "out" / "valid.json")["0011_000001"]["transcript"] == esd_text("0011_000001")


def test_undecodable_transcript_is_reported(tmp_path):
    root = build_esd(tmp_path / "ESD", speakers=["0011"])
    (root / "0011" / "0011.txt").write_bytes(b"\xff\xfe\x00\xd8garbage")  # BOM then a lone surrogate
    report = prepare_esd(root, tmp_path / "out", require_transcript=False)
    assert any("cannot decode" in w for w in report["warnings"])
    assert report["notes"]["kept_without_transcript"]["count"] == 30  # every wav of 0011 is still kept
    assert report["kept"] == 30
    assert read_manifest(tmp_path / "out" / "train.json")["0011_000051"]["transcript"] == ""


@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        ("0011_000351\tThe nine the eggs, I keep.\tAngry", ("0011_000351", "The nine the eggs, I keep.", "angry")),
        ("0011_000351 The nine the eggs, I keep. Angry", ("0011_000351", "The nine the eggs, I keep.", "angry")),
        ("\ufeff0001_000001\t打远一看，\t中立\r", ("0001_000001", "打远一看，", "neutral")),
        ("0001_001401 打远一看 惊喜", ("0001_001401", "打远一看", "surprise")),
        ("0012_001355\tI was so sad", ("0012_001355", "I was so sad", None)),
        ("0012_001355 I was so sad", ("0012_001355", "I was so sad", None)),  # lower-case: part of the text
        ("0012_001355\t\tSad", None),
        ("this line has no id", None),
    ],
)
def test_parse_transcript_line(line, parsed):
    assert parse_transcript_line(line) == parsed


def test_bad_options(esd_root, tmp_path):
    with pytest.raises(ConfigError, match="subset of en,zh"):
        prepare_esd(esd_root, tmp_path / "out", esd_languages="fr")
    with pytest.raises(ConfigError, match="only the 'official' split"):
        prepare_esd(esd_root, tmp_path / "out", split="fold1")
