"""Lineage (rellm.utils.lineage, DoneMarker inputs): fingerprints follow content, a stage with changed inputs
stops naming them, ``overwrite`` redoes it, and a stale output upstream stops every stage below it."""
import json
import os
import shutil
import time

import pytest

from rellm.utils.lineage import Inputs, audio_fingerprint, file_fingerprint, folder_fingerprint, upstream_problems
from rellm.utils.stage import DoneMarker, StaleInputsError, UpstreamStaleError


def test_file_and_folder_fingerprints_follow_content_not_times(tmp_path):
    a = tmp_path / "model" / "config.json"
    a.parent.mkdir()
    a.write_text('{"hidden": 4}')
    big = tmp_path / "model" / "weights.bin"
    big.write_bytes(os.urandom(9 << 20))  # larger than SMALL_FILE: sampled, not read whole
    before_file, before_folder = file_fingerprint(a), folder_fingerprint(a.parent)

    copy = tmp_path / "copy"
    shutil.copytree(a.parent, copy)  # new modification times, same bytes
    assert folder_fingerprint(copy) == before_folder
    os.utime(big, (1, 1))
    assert folder_fingerprint(a.parent) == before_folder

    a.write_text('{"hidden": 5}')
    assert file_fingerprint(a) != before_file and folder_fingerprint(a.parent) != before_folder
    a.write_text('{"hidden": 4}')
    data = bytearray(big.read_bytes())
    data[-10] ^= 0xFF  # a retrained checkpoint's tail differs
    big.write_bytes(bytes(data))
    assert folder_fingerprint(a.parent) != before_folder
    (a.parent / ".lock.train").write_text("pid")  # locks, markers and logs are not part of a model
    (a.parent / "x.log").write_text("log")
    fp = folder_fingerprint(a.parent)
    (a.parent / "x.log").write_text("more log")
    assert folder_fingerprint(a.parent) == fp


def test_audio_fingerprint_is_sizes_and_times(tmp_path):
    wavs = [tmp_path / f"{i}.wav" for i in range(3)]
    for w in wavs:
        w.write_bytes(b"RIFF" + bytes(100))
    fp = audio_fingerprint(wavs)
    assert audio_fingerprint(reversed(wavs)) == fp  # order does not matter
    time.sleep(0.01)
    wavs[1].write_bytes(b"RIFF" + bytes(100))  # re-made at the same path, same size: its time differs
    assert audio_fingerprint(wavs) != fp
    wavs[2].unlink()
    assert audio_fingerprint(wavs) != audio_fingerprint(wavs[:2])


def _stage(folder, name, inputs, stage, options=None):
    marker = DoneMarker(folder, name, stage=stage)
    assert not marker.is_done(options or {"k": 1}, inputs=inputs)
    marker.mark_done(options or {"k": 1}, inputs=inputs)
    return marker


def test_changed_input_stops_the_stage_with_what_changed_and_overwrite_redoes_it(tmp_path):
    manifest = tmp_path / "data" / "train.json"
    manifest.parent.mkdir()
    manifest.write_text(json.dumps({"u1": {"transcript": "hello"}}))
    up = _stage(tmp_path / "responses", "respond_merge", Inputs().file("manifest", manifest), "3")
    down_inputs = lambda: Inputs().marker("responses_train", up.path)
    down = _stage(tmp_path / "exp", "train", down_inputs(), "4")
    assert down.is_done({"k": 1}, inputs=down_inputs())  # same options, same inputs: done

    time.sleep(1.1)  # marker dates have one-second resolution; the message names when the input changed
    up.mark_done({"k": 2}, inputs=Inputs().file("manifest", manifest))  # stage 3 redone with another option
    with pytest.raises(StaleInputsError) as err:
        down.is_done({"k": 1}, inputs=down_inputs())
    message = str(err.value)
    assert "responses_train" in message and str(tmp_path / "responses") in message
    assert json.loads(up.path.read_text())["date"] in message  # when it changed
    assert "./run.sh --stage 4 --overwrite true" in message
    assert not down.is_done({"k": 1}, overwrite=True, inputs=down_inputs())  # overwrite: not done, redo
    down.mark_done({"k": 1}, inputs=down_inputs())
    assert down.is_done({"k": 1}, inputs=down_inputs())


def test_a_stale_output_upstream_stops_the_stages_below_even_with_overwrite(tmp_path):
    manifest = tmp_path / "train.json"
    manifest.write_text("{}")
    s3 = _stage(tmp_path / "s3", "respond_merge", Inputs().file("manifest", manifest), "3")
    s4 = _stage(tmp_path / "s4", "train", Inputs().marker("responses", s3.path), "4")
    s5_inputs = Inputs().marker("model", s4.path)
    s5 = _stage(tmp_path / "s5", "infer_merge", s5_inputs, "5")
    s6 = _stage(tmp_path / "s6", "score", Inputs().marker("answers", s5.path), "6")
    assert upstream_problems(Inputs().marker("answers", s5.path)) == []

    s3.mark_done({"k": 9}, inputs=Inputs().file("manifest", manifest))  # stage 3 redone; 4, 5, 6 not
    problems = upstream_problems(Inputs().marker("answers", s5.path))
    assert [p.parent for p, _ in problems] == [tmp_path / "s4"]  # the chain is followed two levels up
    for marker, inputs in ((s5, s5_inputs), (s6, Inputs().marker("answers", s5.path))):
        for overwrite in (False, True):
            with pytest.raises(UpstreamStaleError, match=r"s4 \(stage 4\) is out of date.*'responses'.*"
                                                         r"\./run\.sh --stage 4 --overwrite true"):
                marker.is_done({"k": 1}, overwrite=overwrite, inputs=inputs)


def test_moved_recipe_folder_keeps_its_lineage_and_old_markers_are_accepted(tmp_path):
    recipe = tmp_path / "recipe"
    (recipe / "data").mkdir(parents=True)
    (recipe / "data" / "train.json").write_text("{}")
    s3 = _stage(recipe / "exp" / "responses", "respond_merge", Inputs().file("manifest", recipe / "data" / "train.json"),
                "3")
    _stage(recipe / "exp" / "rellm", "train", Inputs().marker("responses", s3.path), "4")
    moved = tmp_path / "moved"
    recipe.rename(moved)
    inputs = Inputs().marker("model", moved / "exp" / "rellm" / ".done.train")
    assert upstream_problems(inputs) == []  # the recorded relative paths are followed
    (moved / "data" / "train.json").write_text('{"u": {}}')
    assert [p.parent.name for p, _ in upstream_problems(inputs)] == ["responses"]

    legacy = DoneMarker(tmp_path / "legacy", "train")
    legacy.mark_done({"k": 1})  # written without inputs (before lineage was recorded)
    assert legacy.is_done({"k": 1}, inputs=Inputs().file("manifest", moved / "data" / "train.json"))
