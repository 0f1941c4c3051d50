"""Which systems were trained on the test set: the imported checkpoints' known training data, followed through
init_from, against the parts of the scored test set."""
import json

import pytest

from rellm.scoring.training_data import (
    CHECKPOINTS,
    SOURCES,
    TRAINED,
    checkpoints_of,
    detect_corpus,
    overlap_section,
    parts_of_test_set,
)

AUDEERING = "audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim"
IEMOCAP_FOLD1 = ["Ses01F_impro01_F000", "Ses01M_script02_1_M012", "Ses01F_impro03_M007"]
IEMOCAP_FOLD5 = ["Ses05F_impro01_F008", "Ses05M_impro02_M001"]


def write_experiment(folder, model=None, init_from=None, import_marker=False):
    """An experiment folder as stage 4 leaves it: final/model.json, hyperparams.yaml, the import's marker."""
    (folder / "final").mkdir(parents=True)
    (folder / "final" / "model.json").write_text(json.dumps(model or {"model": {}, "base_models": {}}))
    if init_from is not None:
        (folder / "hyperparams.yaml").write_text(f"# resolved\nseed: 1\ninit_from: {init_from}\nlr: 2.0e-05\n")
    if import_marker:
        (folder / ".done.import_blsp_emo").write_text(json.dumps({"imported_from": {"source": "/ckpt/blsp-emo"}}))
    return folder


@pytest.fixture
def paper_run(tmp_path, monkeypatch):
    """exp/ of a paper recipe: BLSP-Emo imported, RE-LLM initialised from it with the audeering encoder."""
    monkeypatch.chdir(tmp_path)
    for split in ("fold1", "fold5", "official"):
        write_experiment(tmp_path / "exp" / "blsp_emo" / split / "seed1", {
            "model": {}, "base_models": {"llm": "qwen-7b-chat", "emotion_encoder": None},
            "imported_from": {"source": "/ckpt/blsp-emo", "importer": "rellm.pretrained.blsp_emo"}})
        write_experiment(tmp_path / "exp" / "rellm" / split / "seed1",
                         {"model": {}, "base_models": {"llm": "qwen-7b-chat", "emotion_encoder": AUDEERING}},
                         init_from=f"exp/blsp_emo/{split}/seed1")
    return tmp_path / "exp"


def dirs(exp, split, systems=("text_only", "blsp_emo", "rellm")):
    return {s: exp / s / split / "seed1" for s in systems}


def test_test_parts_from_the_utterance_ids():
    assert detect_corpus(IEMOCAP_FOLD1) == "iemocap"
    assert parts_of_test_set("iemocap", IEMOCAP_FOLD1, "test") == {"Session1": 3}
    esd = ["0011_000021", "0011_000450", "0020_001750", "0020_000060"]
    assert detect_corpus(esd) == "esd"
    # official split by the number inside each block of 350: 21-50 test, 51-350 train
    assert parts_of_test_set("esd", esd, "test") == {"0011/test": 1, "0011/train": 1, "0020/train": 2}
    assert parts_of_test_set("msp_podcast", ["MSP-PODCAST_0001_0008"], "test2") == {"Test2": 1}
    assert detect_corpus(["mini_happy_s001", "Ses01F_impro01_F000"]) is None


def test_fold1_lists_blsp_emo_and_rellm_through_init_from(paper_run):
    overlap, details = overlap_section(dirs(paper_run, "fold1"), "iemocap", IEMOCAP_FOLD1, "test", paper_run)
    assert set(overlap) == {"blsp_emo", "rellm"}
    assert "IEMOCAP Session 1 " in overlap["blsp_emo"] and "BLSP-Emo paper" in overlap["blsp_emo"]
    assert "was trained on" in overlap["blsp_emo"] and "/ckpt/blsp-emo" in overlap["blsp_emo"]
    # RE-LLM: the same checkpoint reached through hyperparams.yaml's init_from
    assert "initialised from exp/blsp_emo/fold1/seed1" in overlap["rellm"]
    assert [d["checkpoint"] for d in details["checkpoints"]["rellm"]] == ["audeering_msp_dim", "blsp_emo_released"]
    assert details["checkpoints"]["rellm"][0]["status"] == "no overlap"  # the encoder never saw IEMOCAP
    assert details["test_parts"] == {"Session1": 3} and details["corpus"] == "iemocap"
    # every entry names its sources
    assert details["checkpoints"]["blsp_emo"][0]["sources"][0] == SOURCES["blsp_emo_code"]


def test_fold5_is_held_out(paper_run):
    overlap, details = overlap_section(dirs(paper_run, "fold5"), "iemocap", IEMOCAP_FOLD5, "test", paper_run)
    assert overlap == {}
    assert {d["status"] for d in details["checkpoints"]["rellm"]} == {"no overlap"}
    assert CHECKPOINTS["blsp_emo_released"]["corpora"]["iemocap"]["Session5"][0] == "held out"
    assert all(CHECKPOINTS["blsp_emo_released"]["corpora"]["iemocap"][f"Session{k}"][0] == TRAINED for k in (1, 2, 3, 4))


def test_what_the_sources_do_not_say_is_unknown(paper_run):
    esd, msp = ["0011_000021", "0012_000450"], ["MSP-PODCAST_0001_0008"]
    overlap, _ = overlap_section(dirs(paper_run, "official"), "esd", esd, "test", paper_run)
    assert set(overlap) == {"blsp_emo", "rellm"} and all(v.startswith("unknown: ") for v in overlap.values())
    assert "ESD speakers 0011, 0012" in overlap["blsp_emo"]
    # MSP-Podcast is not in BLSP-Emo's data, but RE-LLM's frozen encoder was fine-tuned on an earlier release
    overlap, _ = overlap_section(dirs(paper_run, "official"), "msp_podcast", msp, "test1", paper_run)
    assert set(overlap) == {"rellm"} and overlap["rellm"].startswith("unknown: ") and "Test1" in overlap["rellm"]


def test_models_trained_by_the_recipe_do_not_overlap(tmp_path):
    """blsp_emo_source=trained: no imported checkpoint anywhere in the lineage; the import marker alone suffices."""
    trained = write_experiment(tmp_path / "exp" / "blsp_emo" / "fold1" / "seed1",
                               {"model": {}, "base_models": {"emotion_encoder": None}}, init_from="null")
    rellm = write_experiment(tmp_path / "exp" / "rellm" / "fold1" / "seed1",
                             {"model": {}, "base_models": {"emotion_encoder": "exp/emotion_encoder/fold1"}},
                             init_from=str(trained))
    overlap, details = overlap_section({"blsp_emo": trained, "rellm": rellm}, "", IEMOCAP_FOLD1, "test")
    assert overlap == {} and details["corpus"] == "iemocap" and details["checkpoints"] == {}
    marked = write_experiment(tmp_path / "marked", import_marker=True)
    assert checkpoints_of(marked) == [("blsp_emo_released", f"{marked} imported it from /ckpt/blsp-emo")]


def test_an_init_from_cycle_ends(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_experiment(a, init_from=str(b), import_marker=True)
    write_experiment(b, init_from=str(a))
    assert [c for c, _ in checkpoints_of(a)] == ["blsp_emo_released"]
    assert [c for c, _ in checkpoints_of(b)] == ["blsp_emo_released"]
