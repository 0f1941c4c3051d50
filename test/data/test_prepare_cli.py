"""``python -m rellm.bin.prepare`` end to end: recipe configs, idempotency, overwrite, errors."""

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from corpus_fixtures import build_esd, build_iemocap, build_msp
from speechbrain.dataio.dataset import DynamicItemDataset

from rellm.bin.prepare import main
from rellm.data.corpora import PREPARERS, get_preparer
from rellm.data.corpora import common as corpora_common
from rellm.utils.config import ConfigError, top_level_keys
from rellm.utils.stage import OptionsChangedError

EGS = Path(__file__).resolve().parents[2] / "egs"
CONF = {corpus: EGS / corpus / "conf" / "prepare.yaml" for corpus in ("iemocap", "esd", "msp_podcast")}


def run(corpus, root, save, *extra):
    main([str(CONF[corpus]), "--data_folder", str(root), "--save_folder", str(save), *extra])


def mtimes(folder):
    """The outputs' modification times (a lock file is written by every run that takes it: not an output)."""
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".lock.")}


@pytest.fixture(scope="module")
def spaced_iemocap(tmp_path_factory):
    return build_iemocap(tmp_path_factory.mktemp("cli") / "my corpora" / "IEMOCAP full release")


def test_iemocap_end_to_end_with_spaces(spaced_iemocap, tmp_path):
    save = tmp_path / "egs dir" / "data" / "fold5"
    run("iemocap", spaced_iemocap, save, "--split", "fold5")
    assert sorted(p.name for p in save.iterdir()) == sorted(
        [
            ".done.prepare",
            ".lock.prepare",  # stage 1's lock on its folder (released: empty)
            "data_root.txt",
            "prepare.log",
            "prepare_report.json",
            "test.json",
            "train.json",
            "valid.json",
        ]
    )
    root = (save / "data_root.txt").read_text().strip()
    assert root == str(spaced_iemocap)
    dataset = DynamicItemDataset.from_json(save / "test.json", replacements={"data_root": root})
    dataset.set_output_keys(["id", "wav", "emotion", "speaker"])
    items = list(dataset)
    assert len(items) == 5 and all(os.path.isfile(item["wav"]) for item in items)
    report = json.loads((save / "prepare_report.json").read_text())
    assert report["corpus"] == "iemocap" and report["split"] == "fold5" and report["data_root"] == root
    assert "kept 21 utterances" in (save / "prepare.log").read_text()


def test_same_options_do_nothing_and_changed_options_stop(spaced_iemocap, tmp_path):
    save = tmp_path / "fold5"
    run("iemocap", spaced_iemocap, save)
    before = mtimes(save)
    manifests = {n: (save / f"{n}.json").read_text() for n in ("train", "valid", "test")}
    run("iemocap", spaced_iemocap, save)
    after = mtimes(save)
    assert {k: v for k, v in after.items() if k != "prepare.log"} == {
        k: v for k, v in before.items() if k != "prepare.log"
    }

    with pytest.raises(OptionsChangedError, match=r"iemocap_classes: 4 -> 5.*--overwrite=true"):
        run("iemocap", spaced_iemocap, save, "--iemocap_classes=5")
    assert {n: (save / f"{n}.json").read_text() for n in manifests} == manifests  # untouched

    run("iemocap", spaced_iemocap, save, "--iemocap_classes=5", "--overwrite=true")
    test = json.loads((save / "test.json").read_text())
    assert test["Ses05F_impro01_M001"]["emotion"] == "surprise"
    train = json.loads((save / "train.json").read_text())
    assert len(train) == len(json.loads(manifests["train"])) + 3  # replaced, never appended


def test_esd_and_msp_through_their_recipe_configs(tmp_path):
    esd = build_esd(tmp_path / "Emotion Speech Dataset", speakers=["0011", "0001"])
    run("esd", esd, tmp_path / "esd", "--esd_languages=en,zh")
    assert json.loads((tmp_path / "esd" / "prepare_report.json").read_text())["sets"]["valid"]["speakers"] == 2
    msp = build_msp(tmp_path / "MSP")
    run("msp_podcast", msp, tmp_path / "msp")
    assert sorted(p.name for p in (tmp_path / "msp").glob("*.json")) == [
        "prepare_report.json", "test1.json", "test2.json", "train.json", "valid.json",
    ]  # fmt: skip


def test_interrupted_run_is_redone(spaced_iemocap, tmp_path, monkeypatch):
    save = tmp_path / "fold5"
    calls = []

    def crash_on_second(path, entries):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real_write(path, entries)

    real_write = corpora_common.write_manifest
    monkeypatch.setattr(corpora_common, "write_manifest", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        run("iemocap", spaced_iemocap, save)
    assert not (save / ".done.prepare").exists() and not (save / "valid.json").exists()
    monkeypatch.setattr(corpora_common, "write_manifest", real_write)
    run("iemocap", spaced_iemocap, save)
    assert (save / ".done.prepare").exists() and json.loads((save / "valid.json").read_text())


def test_deleted_manifest_is_remade(spaced_iemocap, tmp_path):
    save = tmp_path / "fold5"
    run("iemocap", spaced_iemocap, save)
    (save / "valid.json").unlink()
    run("iemocap", spaced_iemocap, save)
    assert len(json.loads((save / "valid.json").read_text())) == 2


def test_skip_prep_writes_nothing(tmp_path):
    run("iemocap", tmp_path / "nowhere", tmp_path / "out", "--skip_prep=true")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".lock.prepare", "prepare.log"]
    assert (tmp_path / "out" / ".lock.prepare").read_text() == ""  # released


@pytest.mark.parametrize("data_folder", ["", "/nonexistent/IEMOCAP_full_release"])
def test_missing_root_is_one_clear_error(tmp_path, data_folder):
    proc = subprocess.run(
        [sys.executable, "-m", "rellm.bin.prepare", str(CONF["iemocap"]), "--data_folder", data_folder,
         "--save_folder", str(tmp_path / "out")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "ERROR:" in proc.stderr and "Set IEMOCAP in db.sh" in proc.stderr
    assert "Session1/ ... Session5/" in proc.stderr and "sail.usc.edu/iemocap" in proc.stderr


@pytest.mark.parametrize(("corpus", "variable"), [("esd", "ESD"), ("msp_podcast", "MSP_PODCAST")])
def test_empty_root_names_the_db_variable(tmp_path, corpus, variable):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=f"is empty. Set {variable} in db.sh"):
        run(corpus, tmp_path / "empty", tmp_path / "out")


def test_every_config_key_is_a_preparer_option():
    for corpus, conf in CONF.items():
        params = set(inspect.signature(get_preparer(corpus)).parameters)
        assert set(top_level_keys(conf)) == params | {"corpus"}, corpus


def test_dispatch_table():
    assert set(PREPARERS) == {"iemocap", "esd", "msp_podcast", "mini", "librispeech", "mini_asr"}
    assert get_preparer("mini").__module__ == "rellm.data.corpora.mini"
    assert get_preparer("mini_asr").__module__ == "rellm.data.corpora.mini_asr"
    with pytest.raises(KeyError, match="known: esd, iemocap, librispeech, mini, mini_asr, msp_podcast"):
        get_preparer("gigaspeech")


def test_option_the_preparer_does_not_take(tmp_path):
    conf = tmp_path / "prepare.yaml"
    conf.write_text(CONF["esd"].read_text() + "iemocap_classes: 4\n")
    with pytest.raises(ConfigError, match="iemocap_classes are not used by the esd preparer"):
        main([str(conf), "--data_folder", str(tmp_path), "--save_folder", str(tmp_path / "out")])
