"""Where a trained model's base models are found: from the model folder itself, never by searching."""
import json
import os
import shutil

import pytest
from api_helpers import make_experiment

from rellm.model_folder import ModelFolderError, base_model_path, open_model_folder


@pytest.fixture
def recipe(tmp_path, bases):
    """A recipe folder whose experiment names its emotion encoder and LLM relative to the recipe folder, as
    stage 4 does when it runs there (``exp/emotion_encoder/<split>``)."""
    llm, whisper, emotion = bases
    folder = tmp_path / "egs" / "myrecipe"
    (folder / "exp" / "emotion_encoder").mkdir(parents=True)
    shutil.copytree(emotion, folder / "exp" / "emotion_encoder" / "official")
    shutil.copytree(llm, folder / "llm")
    cwd = os.getcwd()
    os.chdir(folder)  # stage 4 runs in the recipe folder and records the paths as its config gives them
    try:
        exp = make_experiment(folder, "llm", whisper, "exp/emotion_encoder/official")
    finally:
        os.chdir(cwd)
    return folder, exp


def test_relative_base_folders_are_found_from_any_working_directory(recipe, tmp_path, monkeypatch):
    folder, exp = recipe
    meta = json.loads((exp / "final" / "model.json").read_text())
    assert meta["base_models"]["emotion_encoder"] == "exp/emotion_encoder/official"  # as the config named it
    assert meta["base_model_folders"]["emotion_encoder"] == "../../../../emotion_encoder/official"  # from final/
    monkeypatch.chdir(tmp_path)  # anywhere but the recipe folder
    model = open_model_folder(exp)
    assert model.kind == "experiment" and model.system == "rellm"
    assert os.path.samefile(model.base_models["emotion_encoder"], folder / "exp" / "emotion_encoder" / "official")
    assert os.path.samefile(model.base_models["llm"], folder / "llm")


def test_stage5_loading_finds_a_relative_llm_from_another_directory(recipe, tmp_path, monkeypatch):
    from rellm.models.speech_llm import SpeechLLM

    folder, exp = recipe
    monkeypatch.chdir(tmp_path)
    model = SpeechLLM.from_pretrained_dir(exp)
    assert model.emotion_dim == 32 and os.path.samefile(model.llm_name, folder / "llm")


def test_experiments_saved_before_the_record_use_the_recipe_layout_only(recipe, tmp_path, monkeypatch):
    folder, exp = recipe
    config = exp / "final" / "model.json"
    meta = json.loads(config.read_text())
    del meta["base_model_folders"]  # as stage 4 wrote model.json before it recorded them
    config.write_text(json.dumps(meta))
    monkeypatch.chdir(tmp_path)
    found = open_model_folder(exp).base_models["emotion_encoder"]
    assert os.path.samefile(found, folder / "exp" / "emotion_encoder" / "official")  # <recipe>/exp/<m>/<s>/seed1
    # the layout is the one place looked at: an experiment moved deeper is not searched for upwards
    deeper = folder / "archive" / "exp" / "rellm" / "official" / "seed1"
    shutil.copytree(exp, deeper)
    assert open_model_folder(deeper).base_models["emotion_encoder"] == "exp/emotion_encoder/official"
    # run from the recipe folder, the path is read as the stages read it
    monkeypatch.chdir(folder)
    assert open_model_folder(deeper).base_models["emotion_encoder"] == "exp/emotion_encoder/official"


def test_exported_folders_never_fall_back(tmp_path):
    meta = {"model": {"llm": "base/llm"}, "base_models": {"llm": "base/llm"}, "base_model_folders": {"llm": "base/llm"}}
    with pytest.raises(ModelFolderError, match="copy the whole exported folder"):
        base_model_path(meta, "llm", tmp_path, recipe_layout=False)
    (tmp_path / "base" / "llm").mkdir(parents=True)
    assert base_model_path(meta, "llm", tmp_path, recipe_layout=False) == str(tmp_path / "base" / "llm")
    assert base_model_path({"model": {"llm": "smollm2-135m-instruct"}}, "llm", tmp_path) == "smollm2-135m-instruct"


def test_a_folder_without_a_model_is_explained(tmp_path):
    with pytest.raises(ModelFolderError, match="no such folder"):
        open_model_folder(tmp_path / "nope")
    with pytest.raises(ModelFolderError, match="has no trained model"):
        open_model_folder(tmp_path)
