"""The stage-1 manifest format: fields, {data_root} placeholder, brace escaping, SpeechBrain loading."""

import json

import numpy as np
import pytest
import soundfile
import speechbrain as sb
from speechbrain.dataio.dataset import DynamicItemDataset

from rellm.data.manifest import (
    MANIFEST_FIELDS,
    make_entry,
    read_data_root,
    read_manifest,
    wav_template,
    write_data_root,
    write_manifest,
)


def entry(**changes):
    fields = {
        "relpath": "a b/{x}.wav", "duration": 1.23456, "transcript": "Say {hi} to me.", "emotion": "happy",
        "arousal": 0.5, "valence": 1.0, "dominance": 0.0, "speaker": "Ses01F", "gender": "F",
    }  # fmt: skip
    fields.update(changes)
    return make_entry(**fields)


def test_entry_has_every_field_and_escapes_braces():
    e = entry()
    assert tuple(e) == MANIFEST_FIELDS
    assert e["wav"] == "{data_root}/a b/{{x}}.wav"
    assert e["transcript"] == "Say {{hi}} to me."
    assert e["duration"] == 1.2346


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"emotion": "fru"}, "not one of"),
        ({"gender": "Male"}, "gender"),
        ({"arousal": 1.5}, "arousal must be in"),
        ({"duration": 0}, "duration must be positive"),
        ({"relpath": "/abs/x.wav"}, "relative"),
        ({"relpath": "../x.wav"}, "relative"),
    ],
)
def test_bad_entries_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        entry(**change)


def test_nan_dimension_is_null():
    assert entry(valence=float("nan"))["valence"] is None


def test_round_trip_through_speechbrain(tmp_path):
    root = tmp_path / "corpus with spaces"
    wav = root / "a b" / "{x}.wav"
    wav.parent.mkdir(parents=True)
    soundfile.write(wav, np.zeros(16000, dtype="float32"), 16000)
    manifest = tmp_path / "out" / "train.json"
    write_manifest(manifest, {"u2": entry(), "u1": entry(transcript="plain")})
    assert list(json.loads(manifest.read_text())) == ["u1", "u2"]  # sorted by id

    data = read_manifest(manifest, data_root=root)
    assert data["u2"]["wav"] == str(wav) and data["u2"]["transcript"] == "Say {hi} to me."
    assert read_manifest(manifest)["u2"]["wav"] == "{data_root}/a b/{x}.wav"

    dataset = DynamicItemDataset.from_json(manifest, replacements={"data_root": str(root)})

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def audio(path):
        return sb.dataio.dataio.read_audio(path)

    dataset.add_dynamic_item(audio)
    dataset.set_output_keys(["id", "sig", "transcript", "emotion", "duration"])
    items = {item["id"]: item for item in dataset}
    assert items["u2"]["sig"].shape == (16000,)
    assert items["u2"]["transcript"] == "Say {hi} to me."


def test_data_root_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="run stage 1"):
        read_data_root(tmp_path)
    write_data_root(tmp_path, "/data/my corpus")
    assert read_data_root(tmp_path) == "/data/my corpus"


def test_wav_template_uses_forward_slashes():
    assert wav_template("Session1/sentences/wav/x.wav") == "{data_root}/Session1/sentences/wav/x.wav"


def test_read_manifest_formats_like_speechbrain_load_data_json(tmp_path):
    """Our reader replaces what SpeechBrain's would, at every level, and leaves the rest as it is."""
    from speechbrain.dataio.dataio import load_data_json

    from rellm.data.manifest import format_strings

    raw = {"u1": {"wav": "{data_root}/{{x}}.wav", "duration": 1.5, "transcript": "Say {{hi}}.", "emotion": "sad",
                  "extra": ["{data_root}/a.wav", {"b": "{data_root}/b.wav", "n": None}, 3, ["{{y}}"]]},
           "u2": {"wav": "plain.wav", "duration": 2, "transcript": "", "emotion": "happy", "speaker": None}}
    path = tmp_path / "m.json"
    path.write_text(json.dumps(raw))
    for root in ("/corpus root", "{data_root}"):
        expected = load_data_json(str(path), {"data_root": root})
        assert format_strings(json.loads(path.read_text()), {"data_root": root}) == expected
        assert read_manifest(path, data_root=None if root == "{data_root}" else root) == expected
    assert expected["u1"]["extra"][1]["b"] == "{data_root}/b.wav" and expected["u1"]["transcript"] == "Say {hi}."
