"""Released BLSP-Emo import against the reference code (a tiny Blsp2Model made and run by it).

Fixtures: test/fixtures/blsp_emo/ (make_fixtures.py): the checkpoint in the released layout
(pytorch_model.bin, config.json, qwen.tiktoken, preprocessor_config.json) and the reference's
Whisper states, adapter outputs, SER logits, LLM logits (LoRA on / off) and greedy tokens.
"""
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rellm.pretrained.__main__ import main as pretrained_main
from rellm.pretrained.errors import ConversionError
from rellm.pretrained.qwen1 import convert_qwen1
from rellm.testing.reference_decoding import reference_generate
from rellm.training.blsp_emo_import import import_blsp_emo

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "blsp_emo"


@pytest.fixture(scope="module")
def expected():
    return json.loads((FIXTURES / "expected_blsp_emo.json").read_text()), load_file(FIXTURES / "expected_blsp_emo.safetensors")


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory):
    dst = tmp_path_factory.mktemp("llm") / "qwen-tiny"
    convert_qwen1(FIXTURES / "qwen1", dst)
    return dst


@pytest.fixture(scope="module")
def exp_dir(tmp_path_factory, qwen_dir):
    exp = tmp_path_factory.mktemp("exp") / "blsp_emo"
    assert pretrained_main(["import-blsp-emo", str(FIXTURES / "blsp_emo"), str(exp), "--llm", str(qwen_dir)]) == 0
    return exp


@pytest.fixture(scope="module")
def model(exp_dir):
    from rellm.models.speech_llm import SpeechLLM

    return SpeechLLM.from_pretrained_dir(exp_dir)  # strict: every own_state_dict name must be there


def _speech(exp_dir, expected, i):
    """Whisper states from the imported encoder folder, as stage 2 computes them (padded, trimmed)."""
    from rellm.pretrained import load_whisper_encoder

    meta, tensors = expected
    encoder, _ = load_whisper_encoder(exp_dir / "whisper")
    frames = meta["utterances"][i]["whisper_frames"]
    with torch.no_grad():
        return encoder(tensors[f"mel.{i}"].float()[None]).last_hidden_state[:, :frames], frames


def test_model_json_is_partial_lora_on_every_blsp_target(exp_dir):
    meta = json.loads((exp_dir / "final" / "model.json").read_text())
    m = meta["model"]
    assert m["lora_target_modules"] == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert (m["lora_r"], m["lora_alpha"], m["lora_scope"], m["emotion_dim"]) == (4, 8, "speech", 0)
    assert (m["speech_dim"], m["adapter_bottleneck_dim"]) == (32, 16)
    assert meta["imported_from"]["llm_tensors_compared"] == 27 and meta["imported_from"]["llm_max_abs_diff"] == 0.0
    assert meta["avd_head_trained"] is False
    # what the released generate.py would decode with: the checkpoint's generation_config, recorded
    assert meta["imported_from"]["generation_config"] == {"chat_format": "chatml", "eos_token_id": 456,
                                                          "pad_token_id": 456}


@pytest.mark.parametrize("i", [0, 1])
def test_outputs_equal_the_reference(exp_dir, model, expected, i):
    meta, tensors = expected
    utt = meta["utterances"][i]
    states, frames = _speech(exp_dir, expected, i)
    torch.testing.assert_close(states[0], tensors[f"whisper_states.{i}"], atol=1e-4, rtol=0)
    E, M = model.encode_speech(states, torch.tensor([frames]))
    assert int(M.sum()) == utt["speech_tokens"]
    torch.testing.assert_close(E[0], tensors[f"adapter_out.{i}"], atol=1e-4, rtol=0)
    torch.testing.assert_close(model.classify_emotion(E, M)[0], tensors[f"ser_logits.{i}"], atol=1e-4, rtol=0)

    prefix, suffix = torch.tensor([meta["prefix_ids"]]), torch.tensor([meta["suffix_ids"]])
    packed = model.pack(prefix, torch.tensor([prefix.shape[1]]), (E, M), suffix, torch.tensor([suffix.shape[1]]))
    head = model.base_llm.get_output_embeddings()
    with torch.no_grad():
        for use_lora, key in ((True, "llm_logits"), (False, "base_logits")):
            hidden, _ = model.llm_hidden(packed, use_lora=use_lora)
            torch.testing.assert_close(head(hidden[0, -4:]), tensors[f"{key}.{i}"], atol=1e-4, rtol=0)
    inputs = {"inputs_embeds": packed.inputs_embeds, "attention_mask": packed.attention_mask.long(),
              "lora_mask": packed.lora_mask}
    tokens = reference_generate(model, inputs, max_new_tokens=8, min_new_tokens=8)[0].tolist()
    # the reference returns its bos ("\n", never fed to the model) before the 8 new tokens
    assert tokens == utt["greedy_tokens"][1:]


def test_is_a_valid_init_from_for_rellm(exp_dir, model, qwen_dir, expected):
    """RE-LLM continues from it: LoRA and SER head copied; with fusion_init expand the fusion adapter starts as
    BLSP-Emo's adapter (the default, fresh, starts a new one, as the released RE-LLM code does)."""
    from rellm.models.speech_llm import SpeechLLM
    from rellm.training.align import init_from_experiment

    config = json.loads((exp_dir / "final" / "model.json").read_text())["model"]
    config.update(llm=str(qwen_dir), emotion_dim=8, llm_dtype="float32")
    rellm = SpeechLLM(**config)
    init_from_experiment(rellm, exp_dir, fusion_init="expand")
    ours, theirs = rellm.own_state_dict(), model.own_state_dict()
    lora = [k for k in theirs if "lora_" in k]
    assert len(lora) == 2 * 2 * 7
    for key in lora + ["emotion_head.proj.weight"]:
        torch.testing.assert_close(ours[key], theirs[key], atol=0, rtol=0)
    states, frames = _speech(exp_dir, expected, 0)
    E, _M = rellm.encode_speech(states, torch.tensor([frames]), torch.randn(1, 8))
    torch.testing.assert_close(E[0], expected[1]["adapter_out.0"], atol=1e-4, rtol=0)


def test_another_llm_is_refused(tmp_path, exp_dir):
    from safetensors.torch import save_file

    other = tmp_path / "other"
    convert_qwen1(FIXTURES / "qwen1", other)
    state = load_file(other / "model.safetensors")
    state["model.norm.weight"] = state["model.norm.weight"] + 0.5
    save_file(state, str(other / "model.safetensors"))
    with pytest.raises(ConversionError, match="model.norm.weight"):
        import_blsp_emo(FIXTURES / "blsp_emo", tmp_path / "exp", llm=str(other))


def test_whisper_check_and_embedded_llm(tmp_path, exp_dir, expected, qwen_dir):
    from safetensors.torch import save_file

    meta = import_blsp_emo(FIXTURES / "blsp_emo", tmp_path / "exp", llm="embedded", check_whisper=exp_dir / "whisper")
    assert meta["imported_from"]["whisper_max_abs_diff"] == 0.0
    assert Path(meta["model"]["llm"]) == (tmp_path / "exp" / "llm").resolve()
    a, b = load_file(tmp_path / "exp" / "llm" / "model.safetensors"), load_file(qwen_dir / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    wrong = tmp_path / "wrong_whisper"
    wrong.mkdir()
    for f in (exp_dir / "whisper").iterdir():
        (wrong / f.name).write_bytes(f.read_bytes())
    state = load_file(wrong / "model.safetensors")
    state["model.encoder.layer_norm.weight"] = state["model.encoder.layer_norm.weight"] * 2
    save_file(state, str(wrong / "model.safetensors"))
    with pytest.raises(ConversionError, match="Whisper encoder differs"):
        import_blsp_emo(FIXTURES / "blsp_emo", tmp_path / "exp2", llm="embedded", check_whisper=wrong)


def test_stage_command_with_the_recipe_config(tmp_path, qwen_dir, exp_dir):
    """rellm.bin.import_blsp_emo with egs/iemocap/conf/import_blsp_emo.yaml: idempotent, options fingerprinted."""
    from rellm.bin.import_blsp_emo import main
    from rellm.models.final_state import load_final_state
    from rellm.utils.stage import OptionsChangedError

    conf = Path(__file__).resolve().parents[2] / "egs" / "iemocap" / "conf" / "import_blsp_emo.yaml"
    out = tmp_path / "exp" / "blsp_emo" / "fold5" / "seed1"
    args = [str(conf), "--src", str(FIXTURES / "blsp_emo"), "--output_folder", str(out), f"--llm_name={qwen_dir}",
            f"--check_whisper={exp_dir / 'whisper'}"]
    assert main(args) == 0
    state, meta = load_final_state(out)
    assert "emotion_head.proj.weight" in state and "adapter.convs.0.weight" in state
    assert meta["prompts"]["system_prompt"] == "You are a helpful assistant."
    assert meta["imported_from"]["whisper_max_abs_diff"] == 0.0
    stamp = (out / "final" / "trainable.safetensors").stat().st_mtime_ns
    assert main(args) == 0  # same options: nothing to do
    assert (out / "final" / "trainable.safetensors").stat().st_mtime_ns == stamp
    with pytest.raises(OptionsChangedError, match="overwrite"):
        main([*args, "--check_llm=false"])


# ---------------------------------------------------------------- the released checkpoint's dtypes
def _checkpoint_in(dtype, folder):
    """The float32 fixture (saved by the reference code as the released checkpoint is) cast to ``dtype``."""
    src = FIXTURES / "blsp_emo_fp32"
    if dtype == torch.float32:
        return src
    folder.mkdir(parents=True)
    for f in src.iterdir():
        if f.name != "pytorch_model.bin":
            (folder / f.name).write_bytes(f.read_bytes())
    state = torch.load(src / "pytorch_model.bin", map_location="cpu", weights_only=True)
    torch.save({k: v.to(dtype) for k, v in state.items()}, folder / "pytorch_model.bin")
    return folder


def test_the_split_lora_of_a_float32_checkpoint_is_written_as_its_own_storage():
    """q, k and v get c_attn's one lora_A (the same tensor under three names) and three views of its lora_B:
    safetensors refuses them as they are; the importer writes each as its own storage."""
    from safetensors.torch import save_file

    from rellm.pretrained.blsp_emo import _split_lora
    from rellm.pretrained.qwen1 import own_storage

    state = torch.load(FIXTURES / "blsp_emo_fp32" / "pytorch_model.bin", map_location="cpu", weights_only=True)
    assert {v.dtype for v in state.values()} == {torch.float32}
    lora = {}
    for matrix in ("lora_A", "lora_B"):
        key = f"qwen_model.model.transformer.h.0.attn.c_attn.{matrix}.default.weight"
        _split_lora(key, state[key], 32, lora)
    assert len({v.untyped_storage().data_ptr() for v in lora.values()}) == 2  # 6 names, 2 storages
    with pytest.raises(RuntimeError, match="share memory"):
        save_file(lora, "/dev/null")
    written = own_storage(lora)
    assert len({v.untyped_storage().data_ptr() for v in written.values()}) == 6
    assert all(torch.equal(written[k], lora[k]) for k in lora)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_the_released_layout_imports_in_every_dtype(tmp_path, dtype, expected):
    src = _checkpoint_in(dtype, tmp_path / "ckpt")
    exp = tmp_path / "exp"
    assert pretrained_main(["import-blsp-emo", str(src), str(exp), "--llm", "embedded"]) == 0
    state = load_file(exp / "final" / "trainable.safetensors")
    source = torch.load(src / "pytorch_model.bin", map_location="cpu", weights_only=True)
    name = "llm.base_model.model.model.layers.{}.self_attn.{}.lora_{}.default.weight"
    for layer in (0, 1):
        a = source[f"qwen_model.model.transformer.h.{layer}.attn.c_attn.lora_A.default.weight"].float()
        b = source[f"qwen_model.model.transformer.h.{layer}.attn.c_attn.lora_B.default.weight"].float()
        for i, proj in enumerate(("q_proj", "k_proj", "v_proj")):
            assert torch.equal(state[name.format(layer, proj, "A")], a)
            assert torch.equal(state[name.format(layer, proj, "B")], b.chunk(3)[i])
    assert len(state) == 10 + 2 * 2 * 7 + 2  # adapter, LoRA, the two heads
    from rellm.models.speech_llm import SpeechLLM

    model = SpeechLLM.from_pretrained_dir(exp)  # the embedded LLM and every tensor load
    if dtype != torch.bfloat16:  # fp16-exact values: the reference's outputs hold (bf16 rounds them)
        states, frames = _speech(exp, expected, 0)
        E, _ = model.encode_speech(states, torch.tensor([frames]))
        torch.testing.assert_close(E[0], expected[1]["adapter_out.0"], atol=1e-4, rtol=0)


def test_a_bf16_stored_whisper_passes_the_check_and_another_one_is_named(tmp_path, exp_dir):
    """A bf16 copy of the encoder differs from the fp16 one by bf16's rounding (measured: up to 2^-8 of a value,
    0.0039, 0.002 absolute), which rtol 1e-3 refused; the tolerance is now the coarser dtype's. A different encoder
    still fails, and the message names the tensor, the dtypes and the difference."""
    from rellm.pretrained.blsp_emo import check_whisper_equal, whisper_tolerances

    state = torch.load(FIXTURES / "blsp_emo" / "pytorch_model.bin", map_location="cpu", weights_only=True)
    whisper = {k[len("whisper_model."):]: v for k, v in state.items() if k.startswith("whisper_model.")}
    bf16 = {k: v.to(torch.bfloat16) for k, v in whisper.items()}
    rel = max(float(((bf16[k].float() - v.float()).abs() / v.float().abs().clamp_min(1e-30)).max())
              for k, v in whisper.items())
    assert 1e-3 < rel <= 2 ** -8
    assert whisper_tolerances(torch.bfloat16, torch.float16) == (2 ** -7, 1e-5)
    with pytest.raises(ConversionError, match="conv1.weight"):
        check_whisper_equal(bf16, exp_dir / "whisper", rtol=1e-3, atol=1e-5)  # the former tolerance
    assert 0 < check_whisper_equal(bf16, exp_dir / "whisper") <= 2 ** -8
    other = dict(bf16, **{"layer_norm.weight": bf16["layer_norm.weight"] * 1.05})
    with pytest.raises(ConversionError) as err:
        check_whisper_equal(other, exp_dir / "whisper")
    message = str(err.value)
    assert "at layer_norm.weight" in message and "checkpoint bfloat16, stage 2 float16" in message
    assert "rtol 0.0078125" in message and "set whisper in conf/extract.yaml" in message
