"""The CTranslate2 model.bin reader, on hand-written files and on files written by ctranslate2 itself."""
import struct

import numpy as np
import pytest

from rellm.pretrained.ctranslate2_format import CT2FormatError, read_ct2_model

_TYPE_IDS = {np.dtype("float32"): 0, np.dtype("int8"): 1, np.dtype("int16"): 2, np.dtype("int32"): 3,
             np.dtype("float16"): 4}


def _str(text):
    raw = text.encode("utf-8") + b"\0"
    return struct.pack("<H", len(raw)) + raw


def write_ct2(path, variables, aliases=(), version=6, spec="TestSpec", revision=1, bf16=()):
    """Serialise ``variables`` (name -> array) as ctranslate2's ModelSpec._serialize does."""
    out = struct.pack("<I", version) + _str(spec) + struct.pack("<I", revision)
    out += struct.pack("<I", len(variables))
    for name, value in variables.items():
        arr = np.asarray(value)
        out += _str(name) + struct.pack("<B", arr.ndim) + b"".join(struct.pack("<I", d) for d in arr.shape)
        if name in bf16:  # top 16 bits of the float32
            raw = (arr.astype("<f4").view("<u4") >> 16).astype("<u2").tobytes()
            type_id = 5
        else:
            raw = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
            type_id = _TYPE_IDS[arr.dtype]
        out += struct.pack("<B", type_id) + struct.pack("<I", len(raw)) + raw
    out += struct.pack("<I", len(aliases))
    for alias, target in aliases:
        out += _str(alias) + _str(target)
    path.write_bytes(out)
    return path


def test_reads_every_dtype_shape_scalar_and_alias(tmp_path):
    rng = np.random.default_rng(1)
    weight = rng.standard_normal((3, 4)).astype(np.float16)
    bias = rng.standard_normal(5).astype(np.float32)
    counts = np.arange(-3, 3, dtype=np.int32).reshape(2, 3)
    bf = np.array([1.5, -2.25, 2.0**15 + 2.0**8], dtype=np.float32)  # exactly representable in bfloat16
    path = write_ct2(
        tmp_path / "model.bin",
        {"enc/w": weight, "enc/b": bias, "enc/c": counts, "enc/heads": np.array(6, np.int8),
         "enc/flag": np.array(-1, np.int16), "enc/bf": bf, "emb/weight": weight[:2]},
        aliases=[("proj/weight", "emb/weight")], spec="WhisperSpec", revision=3, bf16={"enc/bf"})
    model = read_ct2_model(path)
    assert (model.binary_version, model.spec_name, model.spec_revision) == (6, "WhisperSpec", 3)
    assert model.get("enc/w").dtype == np.float16 and np.array_equal(model.get("enc/w"), weight)
    assert np.array_equal(model.get("enc/b"), bias)
    assert np.array_equal(model.get("enc/c"), counts)
    assert model.scalar("enc/heads") == 6 and model.get("enc/heads").shape == ()
    assert model.scalar("enc/flag") == -1
    assert model.get("enc/bf").dtype == np.float32 and np.array_equal(model.get("enc/bf"), bf)
    assert np.array_equal(model.get("proj/weight"), weight[:2])
    with pytest.raises(KeyError, match="no variable 'missing'"):
        model.get("missing")


def test_rejects_other_versions_truncation_trailing_bytes_and_dangling_alias(tmp_path):
    good = {"a": np.ones(3, np.float32)}
    with pytest.raises(CT2FormatError, match="binary version 5"):
        read_ct2_model(write_ct2(tmp_path / "v5.bin", good, version=5))
    blob = write_ct2(tmp_path / "ok.bin", good).read_bytes()
    (tmp_path / "short.bin").write_bytes(blob[:-10])
    with pytest.raises(CT2FormatError, match="truncated"):
        read_ct2_model(tmp_path / "short.bin")
    (tmp_path / "long.bin").write_bytes(blob + b"\0\0")
    with pytest.raises(CT2FormatError, match="2 unexpected bytes"):
        read_ct2_model(tmp_path / "long.bin")
    with pytest.raises(CT2FormatError, match="missing variable 'nowhere'"):
        read_ct2_model(write_ct2(tmp_path / "alias.bin", good, aliases=[("b", "nowhere")]))


def test_reads_the_real_whisper_tiny_file_to_the_documented_layout(whisper_ct2_dir):
    model = read_ct2_model(whisper_ct2_dir / "model.bin")
    assert model.spec_name == "WhisperSpec" and model.spec_revision == 3
    assert len(model.variables) == 148
    assert model.aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}
    assert model.get("encoder/layer_0/self_attention/linear_0/weight").shape == (1152, 384)
    assert model.get("decoder/embeddings/weight").shape == (51864, 384)
    assert model.scalar("decoder/activation") == 3 and model.scalar("encoder/num_heads") == 6
    # The fused k bias segment is zero (HF k_proj has no bias).
    assert not model.get("encoder/layer_0/self_attention/linear_0/bias")[384:768].any()
