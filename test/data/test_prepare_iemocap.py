"""IEMOCAP preparation on a 5-session copy in the release layout (see conftest.build_iemocap)."""

import json
import shutil

import pytest
from corpus_fixtures import NORMAL_S, SHORT_S, build_iemocap
from speechbrain.dataio.dataset import DynamicItemDataset

from rellm.data.corpora.common import DuplicateUtteranceError
from rellm.data.corpora.iemocap import prepare_iemocap, speaker_of
from rellm.data.manifest import read_manifest
from rellm.utils.config import ConfigError

# The four base turns of every session that fall in the 4 classes, with their labels.
BASE_4 = {
    "F_impro01_F000": "neutral",
    "F_impro01_M000": "happy",  # exc
    "M_script01_1b_F000": "angry",
    "M_script01_1b_M000": "sad",
}


def base(session, letters="FM"):
    """Ids of the base 4-class turns of ``session`` spoken by the speakers in ``letters``."""
    return {f"Ses0{session}{suffix}" for suffix in BASE_4 if suffix[-4] in letters}


def load(save):
    return {name: read_manifest(save / f"{name}.json") for name in ("train", "valid", "test")}


def test_fold5_four_classes(iemocap_root, tmp_path):
    save = tmp_path / "data" / "fold5"
    report = prepare_iemocap(iemocap_root, save, split="fold5")
    sets = load(save)

    assert set(sets["test"]) == base(5) | {"Ses05F_impro01_F003"}  # short, but test sets are not filtered
    assert set(sets["valid"]) == base(4, "M")
    assert set(sets["train"]) == base(1) | base(2) | base(3) | base(4, "F")
    assert {e["speaker"] for e in sets["valid"].values()} == {"Ses04M"}

    happy = sets["test"]["Ses05F_impro01_M000"]  # exc, [V, A, D] = [4.0, 3.5, 2.0]
    assert happy["emotion"] == "happy"
    assert (happy["arousal"], happy["valence"], happy["dominance"]) == (0.625, 0.75, 0.25)
    assert (happy["speaker"], happy["gender"]) == ("Ses05M", "M")  # the suffix letter, not the dialog's F
    angry = sets["test"]["Ses05M_script01_1b_F000"]  # [1.5, 4.0, 4.5], the AMST example
    assert (angry["emotion"], angry["speaker"], angry["gender"]) == ("angry", "Ses05F", "F")
    assert (angry["arousal"], angry["valence"], angry["dominance"]) == (0.75, 0.125, 0.875)
    assert sets["train"]["Ses01F_impro01_F000"]["arousal"] == 0.375
    assert happy["wav"] == "{data_root}/Session5/sentences/wav/Ses05F_impro01/Ses05F_impro01_M000.wav"
    assert happy["duration"] == NORMAL_S
    assert sets["test"]["Ses05F_impro01_F003"]["duration"] == SHORT_S
    assert sets["test"]["Ses05F_impro01_F000"]["transcript"] == "I said {hello} there."
    assert sets["train"]["Ses02F_impro01_M000"]["transcript"] == "Words of Ses02F_impro01_M000."
    # the per-evaluator Categorical files label F001/F002 as neutral/angry: never used
    assert not any(utt.endswith(("F001", "F002")) for s in sets.values() for utt in s)

    dropped = {reason: slot["count"] for reason, slot in report["dropped"].items()}
    assert dropped == {
        "label_fru_not_in_4_classes": 5,
        "label_sur_not_in_4_classes": 5,
        "label_xxx_not_in_4_classes": 5,
        "malformed_label_line": 5,  # the [V, A] line without dominance, one per session
        "missing_audio": 1,  # Ses01F_impro01_F003: label without audio
        "unreadable_audio": 1,  # Ses02F_impro01_F003
        "empty_audio": 1,  # Ses03F_impro01_F003
        "no_transcript": 1,  # Ses04F_impro01_F003, whose transcript line is malformed
        "shorter_than_1s_in_train": 1,  # Ses01F_impro01_F005
        "audio_without_label": 1,  # Ses02F_impro01_F009.wav
    }
    assert report["dropped"]["missing_audio"]["examples"] == [
        "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F003.wav"
    ]
    assert report["dropped"]["shorter_than_1s_in_train"]["examples"] == ["Ses01F_impro01_F005 (0.50s)"]
    skipped = {reason: slot["count"] for reason, slot in report["skipped"].items()}
    assert skipped == {
        "macos_junk_file": 15,  # ._ files in EmoEvaluation, transcriptions, sentences/wav of 5 sessions
        "transcript_line_without_utterance_id": 5,  # "M: Yeah."
        "transcript_without_label": 5,  # the MXX0 turns
        "malformed_transcript_line": 1,
    }
    assert report["skipped"]["transcript_without_label"]["examples"][0] == "Ses01F_impro01_MXX0"
    assert {name: s["utterances"] for name, s in report["sets"].items()} == {"train": 14, "valid": 2, "test": 5}
    assert report["kept"] == 21 and report["total_dropped"] == sum(dropped.values())
    assert report["sets"]["test"]["emotions"] == {"angry": 1, "happy": 1, "neutral": 2, "sad": 1}
    # a full 5-session copy with far fewer turns than the release: a loud warning with both counts
    (warning,) = report["warnings"]
    assert "COUNT MISMATCH" in warning and "41 labelled" in warning and "22 usable 4-class" in warning
    assert "Session1 5 (release 1085), Session2 4 (release 1023)" in warning  # F005 of Session1 counts: too short
    assert (save / "data_root.txt").read_text().strip() == str(iemocap_root)


def test_fold1_validates_on_the_male_speaker_of_session5(iemocap_root, tmp_path):
    prepare_iemocap(iemocap_root, tmp_path / "fold1", split="fold1")
    sets = load(tmp_path / "fold1")
    assert set(sets["test"]) == base(1) | {"Ses01F_impro01_F005"}  # 0.5 s, kept in test
    assert set(sets["valid"]) == base(5, "M")
    assert set(sets["train"]) == base(2) | base(3) | base(4) | base(5, "F")  # Ses05F_impro01_F003 is short


@pytest.mark.parametrize("fold", [1, 2, 3, 4, 5])
def test_every_fold_is_speaker_independent(iemocap_root, tmp_path, fold):
    prepare_iemocap(iemocap_root, tmp_path / f"fold{fold}", split=f"fold{fold}")
    speakers = {name: {e["speaker"] for e in s.values()} for name, s in load(tmp_path / f"fold{fold}").items()}
    valid_session = 5 if fold == 1 else fold - 1
    assert speakers["test"] == {f"Ses0{fold}F", f"Ses0{fold}M"}
    assert speakers["valid"] == {f"Ses0{valid_session}M"}
    assert len(speakers["train"]) == 7
    assert not speakers["train"] & (speakers["valid"] | speakers["test"])


def test_five_classes_add_surprise(iemocap_root, tmp_path):
    report = prepare_iemocap(iemocap_root, tmp_path / "out", split="fold5", iemocap_classes=5)
    sets = load(tmp_path / "out")
    surprise = {utt for s in sets.values() for utt, e in s.items() if e["emotion"] == "surprise"}
    assert surprise == {f"Ses0{n}F_impro01_M001" for n in range(1, 6)}
    assert "Ses04F_impro01_M001" in sets["valid"] and "Ses05F_impro01_M001" in sets["test"]
    sur = sets["test"]["Ses05F_impro01_M001"]  # [3.0, 4.0, 3.0]
    assert (sur["arousal"], sur["valence"], sur["dominance"]) == (0.75, 0.5, 0.5)
    assert "label_sur_not_in_5_classes" not in report["dropped"]
    assert report["dropped"]["label_fru_not_in_5_classes"]["count"] == 5


def test_partial_copy_does_not_claim_a_count_mismatch(tmp_path):
    root = build_iemocap(tmp_path / "IEMOCAP_full_release", sessions=(1, 2, 3, 4))
    report = prepare_iemocap(root, tmp_path / "out", split="fold5")
    assert not any("COUNT MISMATCH" in w for w in report["warnings"])
    assert any("Session5" in w and "missing" in w for w in report["warnings"])
    assert load(tmp_path / "out")["test"] == {}


def test_root_one_level_above_the_release(iemocap_root, tmp_path):
    save = tmp_path / "out"
    prepare_iemocap(iemocap_root.parent, save, split="fold5")
    test = read_manifest(save / "test.json")
    assert test["Ses05F_impro01_F000"]["wav"].startswith("{data_root}/IEMOCAP_full_release/Session5/")
    dataset = DynamicItemDataset.from_json(save / "test.json", replacements={"data_root": str(iemocap_root.parent)})
    dataset.set_output_keys(["id", "wav"])
    assert all(item["wav"].startswith(str(iemocap_root) + "/") for item in dataset)


def test_duplicate_label_is_an_error(tmp_path):
    iemocap_root = build_iemocap(tmp_path / "IEMOCAP_full_release", sessions=(1,))
    emo = iemocap_root / "Session1" / "dialog" / "EmoEvaluation"
    shutil.copy(emo / "Ses01F_impro01.txt", emo / "Ses01F_impro01 copy.txt")
    with pytest.raises(DuplicateUtteranceError, match="Ses01F_impro01_F000 is in both"):
        prepare_iemocap(iemocap_root, tmp_path / "out")
    assert not (tmp_path / "out" / "train.json").exists()


@pytest.mark.parametrize("options", [{"split": "fold6"}, {"split": "official"}, {"iemocap_classes": 3}])
def test_bad_options(iemocap_root, tmp_path, options):
    with pytest.raises(ConfigError, match="fold1..fold5|4 or 5"):
        prepare_iemocap(iemocap_root, tmp_path / "out", **options)


def test_speaker_rule():
    assert speaker_of("Ses01F_impro01_M003") == ("Ses01M", "M", 1)
    assert speaker_of("Ses05M_script01_1b_F012") == ("Ses05F", "F", 5)
    assert speaker_of("Ses03F_impro05_MXX0") == ("Ses03M", "M", 3)
    assert speaker_of("Ses01F_impro01") is None


def test_report_is_json_beside_the_manifests(iemocap_root, tmp_path):
    prepare_iemocap(iemocap_root, tmp_path / "out")
    report = json.loads((tmp_path / "out" / "prepare_report.json").read_text())
    assert report["options"]["split"] == "fold5" and report["options"]["iemocap_classes"] == 4
    assert report["options"]["duration_filter_sets"] == ["train", "valid"]
    assert report["sample_rates"] == {"16000": 21}
