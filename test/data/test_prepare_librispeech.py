"""Stage 1 for LibriSpeech (step 1's ASR data) on a fixture in the public release layout."""
import json
from pathlib import Path

import pytest
from corpus_fixtures import LIBRI_NO_LINE, LIBRI_SHORT, build_librispeech

from rellm.bin import prepare as prepare_stage
from rellm.data.corpora.common import CorpusNotFoundError
from rellm.data.corpora.librispeech import prepare_librispeech
from rellm.data.manifest import read_data_root, read_manifest


@pytest.fixture(scope="module")
def libri_root(tmp_path_factory):
    return build_librispeech(tmp_path_factory.mktemp("libri") / "LibriSpeech")


def test_train_and_valid_from_the_named_subsets(libri_root, tmp_path):
    report = prepare_librispeech(libri_root.parent, tmp_path / "data")  # one level above LibriSpeech/ is fine
    train = read_manifest(tmp_path / "data" / "train.json", read_data_root(tmp_path / "data"))
    valid = read_manifest(tmp_path / "data" / "valid.json")
    assert sorted(train) == ["19-198-0000", "19-198-0001", "26-495-0000", "26-495-0004"]
    assert sorted(valid) == ["84-121123-0000", "84-121123-0001"]  # test-clean is not read
    entry = train["19-198-0001"]
    assert entry["transcript"] == "And I saw utterance 19 198 0001 in the old house"
    assert entry["emotion"] is None and entry["arousal"] is None
    assert entry["speaker"] == "19" and entry["gender"] == "F" and train["26-495-0000"]["gender"] == "M"
    assert entry["wav"].endswith("train-clean-100/19/198/19-198-0001.flac")
    assert report["dropped"]["shorter_than_1s_in_train"]["examples"] == [f"{LIBRI_SHORT} (0.50s)"]
    assert report["dropped"]["audio_without_transcript_line"]["count"] == 1
    assert LIBRI_NO_LINE in report["dropped"]["audio_without_transcript_line"]["examples"][0]
    assert report["skipped"]["hidden_file"]["count"] == 1
    assert report["sets"]["train"]["emotions"] == {"unlabelled": 4}


def test_through_the_stage_cli_with_keep_case_and_a_missing_subset(libri_root, tmp_path):
    conf = Path(__file__).resolve().parents[2] / "egs" / "iemocap" / "conf" / "prepare_step1.yaml"
    prepare_stage.main([str(conf), f"--data_folder={libri_root}", f"--save_folder={tmp_path / 'out'}",
                        "--transcript_case=keep", "--valid_subsets=[dev-clean]"])
    train = json.loads((tmp_path / "out" / "train.json").read_text())
    assert train["26-495-0004"]["transcript"] == "AND I SAW UTTERANCE 26 495 0004 IN THE OLD HOUSE"
    with pytest.raises(CorpusNotFoundError, match="train-other-500"):
        prepare_librispeech(libri_root, tmp_path / "x", train_subsets="train-clean-100,train-other-500")
