"""MSP-Podcast preparation on a copy in the 1.9+ and in the older release layout."""

import pytest
from corpus_fixtures import MSP_ROWS, build_msp, msp_text

from rellm.data.corpora.common import CorpusNotFoundError, DuplicateUtteranceError
from rellm.data.corpora.msp_podcast import prepare_msp_podcast
from rellm.data.manifest import read_manifest

SETS = ("train", "valid", "test1", "test2")
EXPECTED = {
    "train": {"MSP-PODCAST_0002_0001", "MSP-PODCAST_0002_0002", "MSP-PODCAST_0023_0319_0001"},
    "valid": {"MSP-PODCAST_0002_0003"},
    "test1": {"MSP-PODCAST_0001_0008", "MSP-PODCAST_0001_0009"},
    "test2": {"MSP-PODCAST_0003_0001"},
}


def load(save):
    return {name: read_manifest(save / f"{name}.json") for name in SETS}


def test_release_1_12_layout(msp_root, tmp_path):
    report = prepare_msp_podcast(msp_root, tmp_path / "out")
    sets = load(tmp_path / "out")
    assert {name: set(s) for name, s in sets.items()} == EXPECTED

    first = sets["test1"]["MSP-PODCAST_0001_0008"]  # N, EmoAct 2.2, EmoVal 4.0, EmoDom 2.6, speaker 30, Male
    assert first["wav"] == "{data_root}/Audios/MSP-PODCAST_0001_0008.wav"
    assert (first["emotion"], first["speaker"], first["gender"]) == ("neutral", "30", "M")
    assert first["arousal"] == pytest.approx(1.2 / 6) and first["valence"] == 0.5
    assert first["dominance"] == pytest.approx(1.6 / 6, abs=1e-6)
    extremes = sets["test2"]["MSP-PODCAST_0003_0001"]  # EmoAct 4, EmoVal 7, EmoDom 1
    assert (extremes["arousal"], extremes["valence"], extremes["dominance"]) == (0.5, 1.0, 0.0)
    unknown = sets["train"]["MSP-PODCAST_0002_0001"]
    assert (unknown["emotion"], unknown["speaker"], unknown["gender"]) == ("angry", "unknown", None)
    assert sets["valid"]["MSP-PODCAST_0002_0003"]["emotion"] == "surprise"
    assert sets["train"]["MSP-PODCAST_0002_0002"]["emotion"] == "sad"
    assert sets["train"]["MSP-PODCAST_0023_0319_0001"]["emotion"] == "happy"  # sub-segment name
    assert first["transcript"] == msp_text("MSP-PODCAST_0001_0008")  # braces survive the loader
    assert sets["train"]["MSP-PODCAST_0002_0002"]["transcript"] == msp_text("MSP-PODCAST_0002_0002")  # 2 lines

    assert {k: v["count"] for k, v in report["dropped"].items()} == {
        "class_C_not_used": 1,
        "class_D_not_used": 1,
        "class_F_not_used": 1,
        "class_O_not_used": 1,
        "class_X_not_used": 1,
        "missing_audio": 1,
        "no_transcript": 1,
    }
    assert report["dropped"]["missing_audio"]["examples"] == ["Audios/MSP-PODCAST_0003_0002.wav"]
    assert report["dropped"]["no_transcript"]["examples"] == ["MSP-PODCAST_0003_0003"]
    assert {k: v["count"] for k, v in report["skipped"].items()} == {
        "audio_without_label": 1,
        "macos_junk_file": 1,
        "test3_audio_without_public_labels": 1,
        "test3_row_without_public_labels": 1,
    }
    assert {k: v["count"] for k, v in report["notes"].items()} == {
        "multi_line_transcript_joined": 1,
        "unknown_speaker": 1,
    }
    assert report["kept"] == 7 and report["total_dropped"] == 7
    assert len(MSP_ROWS) == report["kept"] + report["total_dropped"] + 1  # + the Test3 row


def test_older_release_names_give_the_same_manifests(msp_root, tmp_path):
    old = build_msp(tmp_path / "MSP-PODCAST-Publish-1.8", old_release=True)
    prepare_msp_podcast(msp_root, tmp_path / "new_out")
    prepare_msp_podcast(old, tmp_path / "old_out")
    new_sets, old_sets = load(tmp_path / "new_out"), load(tmp_path / "old_out")
    assert {n: set(s) for n, s in old_sets.items()} == EXPECTED  # Validation -> valid
    for name in SETS:
        for utt, entry in new_sets[name].items():
            assert old_sets[name][utt] == {**entry, "wav": entry["wav"].replace("/Audios/", "/Audio/")}


def test_audios_nested_in_audios(tmp_path):
    root = build_msp(tmp_path / "MSP")
    (root / "Audios").rename(tmp_path / "Audios")
    (root / "Audios").mkdir()
    (tmp_path / "Audios").rename(root / "Audios" / "Audios")
    prepare_msp_podcast(root, tmp_path / "out")
    assert read_manifest(tmp_path / "out" / "valid.json")["MSP-PODCAST_0002_0003"]["wav"] == (
        "{data_root}/Audios/Audios/MSP-PODCAST_0002_0003.wav"
    )


def test_duplicate_row_is_an_error(tmp_path):
    root = build_msp(tmp_path / "MSP")
    labels = root / "Labels" / "labels_consensus.csv"
    labels.write_text(labels.read_text() + "MSP-PODCAST_0001_0008.wav,H,4,4,4,30,Male,Train\n")
    with pytest.raises(DuplicateUtteranceError, match="MSP-PODCAST_0001_0008 has two rows"):
        prepare_msp_podcast(root, tmp_path / "out")


def test_a_folder_without_labels_names_the_db_variable(tmp_path):
    (tmp_path / "MSP" / "Audios").mkdir(parents=True)
    with pytest.raises(CorpusNotFoundError) as err:
        prepare_msp_podcast(tmp_path / "MSP", tmp_path / "out")
    message = str(err.value)
    assert "MSP_PODCAST" in message and "db.sh" in message and "labels_consensus.csv" in message
    assert "utdallas.edu" in message
