"""RESULTS.md's models section names paths a reader of any checkout can use, and links the training curves."""
import json

from rellm.recipes.provenance import display_path, markdown


def _card(folder, **source):
    folder.mkdir(parents=True)
    (folder / "card.json").write_text(json.dumps({"source": source}))
    (folder / "config.json").write_text("{}")


def test_models_section_has_recipe_relative_and_registry_paths_only(tmp_path, monkeypatch):
    home = tmp_path / "home"
    recipe = home / "rellm" / "egs" / "mini"  # a checkout under the home folder, as on most machines
    cache = home / ".cache" / "rellm"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("RELLM_CACHE", str(cache))
    _card(cache / "models" / "whisper-tiny.en", file_sha256="1a5afae06a4db91c" + "0" * 48)
    _card(cache / "models" / "smollm2-135m-instruct", file_sha256="b179c9523d0e6a0f" + "0" * 48)
    _card(cache / "models" / "minilm-l6", wheel_sha256="53aa51172d142c89" + "0" * 48)
    (cache / "epitome" / "minilm-l6").mkdir(parents=True)
    encoder = recipe / "exp" / "emotion_encoder" / "official"
    encoder.mkdir(parents=True)
    (encoder / "config.json").write_text('{"hidden": 64}')
    outside = home / "models" / "my-llm"  # a model folder of the user's, outside the recipe
    outside.mkdir(parents=True)
    (outside / "config.json").write_text("{}")

    (recipe / "dump" / "official" / "train").mkdir(parents=True)
    (recipe / "dump" / "official" / "train" / "features.json").write_text(json.dumps({
        "whisper": "whisper-tiny.en", "emotion_encoder": str(encoder)}))  # stage 2 records absolute folders
    for system, llm in (("blsp_emo", "smollm2-135m-instruct"), ("rellm", str(outside))):
        exp_dir = recipe / "exp" / system / "official" / "seed1"
        (exp_dir / "final").mkdir(parents=True)
        (exp_dir / "final" / "model.json").write_text(json.dumps({"base_models": {
            "llm": llm, "speech_encoder": "whisper-tiny.en", "emotion_encoder": "exp/emotion_encoder/official"}}))
    curves = recipe / "exp" / "rellm" / "official" / "seed1" / "training_curves.png"
    curves.write_bytes(b"\x89PNG\r\n\x1a\nfake curves")
    (curves.parent / "tensorboard").mkdir()
    scores = recipe / "exp" / "scores" / "official" / "seed1" / "test"
    scores.mkdir(parents=True)
    (scores / "metrics.json").write_text(json.dumps({"epitome": {
        "encoder": "minilm-l6", "models": str(cache / "epitome" / "minilm-l6")}}))
    monkeypatch.chdir(recipe)  # stage 6 runs in the recipe folder

    text = markdown("exp", "dump/official", "official", 1)
    assert str(tmp_path) not in text and "/home" not in text and "~/.cache" not in text.replace("(default `~", "")
    lines = {line.split(": ", 1)[0]: line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("- ")}
    assert lines["- stage 2 Whisper"] == "registry:whisper-tiny.en (source sha256 1a5afae06a4db91c)"
    assert lines["- stage 2 emotion encoder"].startswith("exp/emotion_encoder/official (local folder; config.json")
    assert lines["- blsp_emo llm"] == "registry:smollm2-135m-instruct (source sha256 b179c9523d0e6a0f)"
    assert lines["- rellm llm"].startswith("~/models/my-llm (local folder; ")
    assert lines["- EPITOME encoder"] == ("registry:minilm-l6 (source sha256 53aa51172d142c89); classifiers "
                                          "$RELLM_CACHE/epitome/minilm-l6")
    # the training curves: copied beside RESULTS.md (committable with its other figures) and linked from there
    link = "results_figures/official_seed1/training_curves_rellm.png"
    assert lines["- rellm training curves"] == (
        f"[training_curves_rellm.png]({link}) (from exp/rellm/official/seed1/training_curves.png; "
        "TensorBoard: `tensorboard --logdir exp/rellm/official/seed1/tensorboard`)")
    assert (recipe / link).read_bytes() == curves.read_bytes()
    assert "- blsp_emo training curves" not in text  # no curves were written for it

    # RESULTS.md written elsewhere (./run.sh --results exp/RESULTS_seed2.md): its links start from there
    text = markdown("exp", "dump/official", "official", 1, results_dir="exp")
    assert "[training_curves_rellm.png](results_figures/official_seed1/training_curves_rellm.png)" in text
    assert (recipe / "exp" / link).is_file()


def test_display_path(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RELLM_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "home" / "work" / "egs" / "esd"
    assert display_path(root / "exp" / "x", root) == "exp/x"
    assert display_path("exp/../data/train.json", root) == "data/train.json"
    assert display_path(tmp_path / "cache" / "models" / "m", root) == "$RELLM_CACHE/models/m"
    assert display_path(tmp_path / "home" / "data" / "ESD", root) == "~/data/ESD"
    assert display_path("/srv/corpora/ESD", root) == "/srv/corpora/ESD"
