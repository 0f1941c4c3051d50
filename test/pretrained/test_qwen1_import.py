"""Qwen(1) import against the reference code: token ids and logits of a tiny Qwen(1) made by it.

Fixtures: test/fixtures/blsp_emo/ (written by make_fixtures.py from the BLSP-Emo repository's
modeling_qwen.py / tokenization_qwen.py, which cannot ship).
"""
import base64
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rellm.pretrained import qwen1
from rellm.pretrained.__main__ import main as pretrained_main
from rellm.pretrained.errors import ConversionError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "blsp_emo"


@pytest.fixture(scope="module")
def expected():
    return json.loads((FIXTURES / "expected_qwen1.json").read_text()), load_file(FIXTURES / "expected_qwen1.safetensors")


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    dst = tmp_path_factory.mktemp("qwen1") / "qwen-tiny"
    # the tiny fixture is not the pinned Qwen-7B-Chat: converted deliberately (--revision any)
    assert pretrained_main(["import-qwen1", str(FIXTURES / "qwen1"), str(dst), "--revision", "any"]) == 0
    return dst


def test_plain_transformers_loads_it_without_remote_code(imported):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(imported, trust_remote_code=False)
    assert config.model_type == "qwen2" and config.intermediate_size == 64 and config.num_key_value_heads == 2
    assert type(AutoModelForCausalLM.from_pretrained(imported)).__name__ == "Qwen2ForCausalLM"
    assert not list(imported.glob("*.py"))  # no code travels with the folder
    AutoTokenizer.from_pretrained(imported, trust_remote_code=False)


def test_token_ids_equal_the_reference_tokenizer(imported, expected):
    from transformers import AutoTokenizer

    exp, _ = expected
    tok = AutoTokenizer.from_pretrained(imported)
    for case in exp["strings"]:
        ids = tok(case["text"], add_special_tokens=False)["input_ids"]
        assert ids == case["ids"], case["text"]
        assert tok.decode(ids) == case["decoded"]
    for token, token_id in exp["special_ids"].items():
        assert tok.convert_tokens_to_ids(token) == token_id
    assert exp["special_ids"]["<|endoftext|>"] == exp["num_ranks"]  # specials follow the BPE ranks
    assert tok.eos_token == "<|endoftext|>" and tok.pad_token == "<|endoftext|>"


def test_chat_template_is_qwen_7b_chat_chatml(imported, expected):
    from transformers import AutoTokenizer

    from rellm.models.chat_layout import ChatLayout

    exp, _ = expected
    tok = AutoTokenizer.from_pretrained(imported)
    text = tok.apply_chat_template([{"role": "system", "content": "You are a helpful assistant."},
                                    {"role": "user", "content": "How are you?"}], tokenize=False,
                                   add_generation_prompt=True)
    assert text == exp["strings"][1]["text"]  # the reference string, tokenised to the reference ids above
    default = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert default.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n")
    layout = ChatLayout(tok)
    assert tok.decode(layout.header_ids) == "<|im_end|>\n<|im_start|>assistant\n"
    assert layout.stop_token_ids == sorted([exp["special_ids"]["<|im_end|>"], exp["special_ids"]["<|endoftext|>"]])


def test_logits_equal_the_reference_model(imported, expected):
    from transformers import AutoModelForCausalLM

    exp, logits = expected
    model = AutoModelForCausalLM.from_pretrained(imported, dtype=torch.float32).eval()
    for name, ids in exp["sequences"].items():
        assert len(ids) <= model.config.max_position_embeddings
        with torch.no_grad():
            out = model(input_ids=torch.tensor([ids])).logits[0]
        cols = logits[f"{name}.columns"]
        torch.testing.assert_close(out[:, : cols.shape[1]], cols, atol=1e-4, rtol=0)
        torch.testing.assert_close(out[-1], logits[f"{name}.last"], atol=1e-4, rtol=0)


def test_registry_name_imports_the_snapshot_once(tmp_path, monkeypatch):
    from rellm.pretrained import resolve

    monkeypatch.setenv("RELLM_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("QWEN_7B_CHAT", raising=False)
    with pytest.raises(FileNotFoundError, match="QWEN_7B_CHAT"):
        resolve("qwen-7b-chat")
    monkeypatch.setenv("QWEN_7B_CHAT", str(FIXTURES / "qwen1"))
    monkeypatch.delenv("QWEN_7B_CHAT_REVISION", raising=False)
    with pytest.raises(ConversionError, match="is not Qwen/Qwen-7B-Chat at revision 93a65d3.*QWEN_7B_CHAT_REVISION=any"):
        resolve("qwen-7b-chat")  # the tiny fixture is another model: refused before anything is converted
    assert not (tmp_path / "cache" / "models" / "qwen-7b-chat").exists()
    monkeypatch.setenv("QWEN_7B_CHAT_REVISION", "any")
    folder = Path(resolve("qwen-7b-chat"))
    card = json.loads((folder / "import_card.json").read_text())
    assert card["source_check"]["revision_check"].startswith("skipped")
    assert folder == tmp_path / "cache" / "models" / "qwen-7b-chat" and (folder / "config.json").is_file()
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    monkeypatch.delenv("QWEN_7B_CHAT")
    assert Path(resolve("qwen-7b-chat")) == folder  # converted once: no snapshot needed afterwards
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp


def test_pickled_weights_load_only_as_plain_tensors(tmp_path):
    src = tmp_path / "qwen"
    src.mkdir()
    for name in ("config.json", "qwen.tiktoken"):
        (src / name).write_bytes((FIXTURES / "qwen1" / name).read_bytes())
    state = load_file(FIXTURES / "qwen1" / "model.safetensors")
    torch.save(state, src / "pytorch_model.bin")
    qwen1.convert_qwen1(src, tmp_path / "ok")  # a plain tensor pickle converts
    torch.save({"x": Path("/etc")}, src / "pytorch_model.bin")  # any other object is refused
    with pytest.raises(ConversionError, match="weights_only"):
        qwen1.convert_qwen1(src, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_refuses_what_is_not_qwen1(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    assert pretrained_main(["import-qwen1", str(tmp_path), str(tmp_path / "out")]) == 1
    assert "not 'qwen'" in capsys.readouterr().err


# ---------------------------------------------------------------- the pinned revision
def _snapshot(folder, config=None, generation=None, ranks=qwen1.QWEN_7B_CHAT_RANKS):
    """The files of a Qwen-7B-Chat snapshot the revision check reads (no weights), with values overridden."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({**qwen1.QWEN_7B_CHAT_CONFIG, "seq_length": 8192, **(config or {})}))
    gen = {**qwen1.QWEN_7B_CHAT_GENERATION, "do_sample": True, "max_new_tokens": 512, **(generation or {})}
    (folder / "generation_config.json").write_text(json.dumps({k: v for k, v in gen.items() if v is not None}))
    with open(folder / "qwen.tiktoken", "w") as f:
        f.writelines(f"{base64.b64encode(i.to_bytes(3, 'big')).decode()} {i}\n" for i in range(ranks))
    return folder


def test_the_pinned_revision_passes_and_each_difference_is_named(tmp_path):
    pinned = qwen1.QWEN_7B_CHAT_REVISION
    cached = _snapshot(tmp_path / "hub" / "models--Qwen--Qwen-7B-Chat" / "snapshots" / pinned)
    details = qwen1.check_qwen_7b_chat(cached)
    assert details["revision_found"] == pinned and details["revision_found_by"] == "Hugging Face cache folder name"
    # another revision in the cache, an older generation_config (the first release: no penalty, top_p 0.5) ...
    other = _snapshot(tmp_path / "hub2" / "snapshots" / ("a" * 40), generation={"repetition_penalty": None,
                                                                                 "top_p": 0.5})
    with pytest.raises(ConversionError) as err:
        qwen1.check_qwen_7b_chat(other)
    message = str(err.value)
    assert "\n" not in message and f"it is revision {'a' * 40}" in message
    assert "repetition_penalty None (expected 1.1)" in message and "top_p 0.5 (expected 0.8)" in message
    assert f"--revision {pinned}" in message and "QWEN_7B_CHAT_REVISION=any" in message
    # ... another model of the family, another tokenizer
    with pytest.raises(ConversionError, match="hidden_size 5120 .expected 4096.*qwen.tiktoken has 10 ranks"):
        qwen1.check_qwen_7b_chat(_snapshot(tmp_path / "q14", config={"hidden_size": 5120}, ranks=10))
    # a plain copy records no revision: the contents are checked, and the card says the revision was not
    plain = _snapshot(tmp_path / "copy")
    assert qwen1.check_qwen_7b_chat(plain)["revision_found"] is None
    # the opt-out, and another expected revision
    assert qwen1.check_qwen_7b_chat(other, "any")["revision_check"].startswith("skipped")
    assert qwen1.check_qwen_7b_chat(_snapshot(tmp_path / "s" / "snapshots" / ("b" * 40)), "b" * 40)
    with pytest.raises(ConversionError, match="neither a 40-character commit"):
        qwen1.check_qwen_7b_chat(plain, "v1.1")


def test_revision_from_a_git_clone_or_a_local_dir_download(tmp_path):
    pinned = qwen1.QWEN_7B_CHAT_REVISION
    clone = _snapshot(tmp_path / "clone")
    (clone / ".git" / "refs" / "heads").mkdir(parents=True)
    (clone / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (clone / ".git" / "refs" / "heads" / "main").write_text("c" * 40 + "\n")
    assert qwen1.snapshot_revision(clone) == ("c" * 40, "git refs/heads/main")
    with pytest.raises(ConversionError, match=f"it is revision {'c' * 40}"):
        qwen1.check_qwen_7b_chat(clone)
    local = _snapshot(tmp_path / "local")
    meta = local / ".cache" / "huggingface" / "download"
    meta.mkdir(parents=True)
    (meta / "config.json.metadata").write_text(f"{pinned}\n\"etag\"\n1700000000.0\n")
    assert qwen1.check_qwen_7b_chat(local)["revision_found"] == pinned


def test_file_hashes_recorded_by_the_download_are_verified(tmp_path):
    from rellm.pretrained.fetch import sha256_file

    snap = _snapshot(tmp_path / "repo" / "snapshots" / qwen1.QWEN_7B_CHAT_REVISION)
    blobs = tmp_path / "repo" / "blobs"
    blobs.mkdir()
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"weights of the pinned revision")
    digest = sha256_file(weights)
    weights.rename(blobs / digest)
    (snap / "model-00001-of-00008.safetensors").symlink_to(Path("..", "..", "blobs", digest))
    assert qwen1.check_qwen_7b_chat(snap, verify_files=True)["files_sha256_verified"] == {
        "model-00001-of-00008.safetensors": digest}
    (blobs / digest).write_bytes(b"something else")
    with pytest.raises(ConversionError, match="model-00001-of-00008.safetensors: sha256 .* the hub listed"):
        qwen1.check_qwen_7b_chat(snap, verify_files=True)
