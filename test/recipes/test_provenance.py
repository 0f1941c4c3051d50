"""RESULTS.md's commands per stage: the recipe and Python commands of every stage's command.txt, deterministic."""
import json

from rellm.recipes.provenance import markdown, models, stage_commands
from rellm.utils.stage import write_command_file

RECIPE = "./run.sh --stage 1 --stop_stage 6"


def py(stage, *args):
    return " ".join(["python -m", f"rellm.bin.{stage}", *args])


def make_recipe_outputs(root, monkeypatch):
    """The command.txt files a run leaves, written in a scrambled order."""
    monkeypatch.chdir(root)
    monkeypatch.setenv("RELLM_RECIPE_COMMAND", RECIPE)
    folders = {
        "exp/responses/s/valid": [py("respond", "--shard 1"), py("respond", "--merge true")],
        "exp/responses/s/train": [py("respond", "--shard 1"), py("respond", "--merge true")],
        "data/s": [py("prepare", "--split s")],
        "exp/emotion_encoder/s": [py("train_emotion_encoder")],
        "dump/s/train": [py("extract", "--shard 1"), py("extract", "--shard 2"), py("extract", "--merge true")],
        "exp/blsp_emo/s/seed1": [py("train", "conf/train_blsp_emo.yaml")],
        "exp/rellm/s/seed1/infer/test": [py("infer", "--system rellm")],
        "exp/scores/s/seed1/test": [py("score", "--test_set test")],
        "cache/epitome/minilm/ER": [py("epitome", "train")],
    }
    for folder, commands in folders.items():
        (root / folder).mkdir(parents=True)
        write_command_file(root / folder, commands)
    (root / "exp/scores/s/seed1/test/metrics.json").write_text(json.dumps({"epitome": {"models": "cache/epitome/minilm"}}))


def test_every_stage_lists_its_recipe_and_python_commands_in_a_fixed_order(tmp_path, monkeypatch):
    make_recipe_outputs(tmp_path, monkeypatch)
    final = [(RECIPE, py("results", "conf/score.yaml"))]
    commands = stage_commands("exp", "dump/s", "s", 1, final=final)
    assert [stage for stage, _, _ in commands] == ["1 data preparation", "2a emotion encoder", "2 features",
                                                   "3 expected responses", "4 training", "5 inference", "6 scoring"]
    assert all(recipes == [RECIPE] for stage, recipes, _ in commands if stage != "4 training")
    by_stage = {stage: pythons for stage, _, pythons in commands}
    assert by_stage["2 features"] == [py("extract", "--shard 1"), py("extract", "--shard 2"),
                                      py("extract", "--merge true")]
    # one line per distinct command, folders in sorted order (train before valid)
    assert by_stage["3 expected responses"] == [py("respond", "--shard 1"), py("respond", "--merge true")]
    assert by_stage["4 training"] == [py("train", "conf/train_blsp_emo.yaml")]
    assert by_stage["6 scoring"] == [py("epitome", "train"), py("score", "--test_set test"),
                                     py("results", "conf/score.yaml")]
    text = markdown("exp", "dump/s", "s", 1, final=final)
    assert text == markdown("exp", "dump/s", "s", 1, final=final)
    assert f"# stage 1 data preparation\n{py('prepare', '--split s')}\n# recipe: {RECIPE}\n" in text
    assert "# stage 6 scoring\npython -m rellm.bin.epitome train\n" in text


def test_a_stage_without_command_txt_falls_back_to_its_job_logs(tmp_path, monkeypatch):
    make_recipe_outputs(tmp_path, monkeypatch)
    (tmp_path / "exp/blsp_emo/s/seed1/command.txt").unlink()  # outputs of a version before command.txt
    (tmp_path / "exp/blsp_emo/s/seed1/train.log").write_text("# python -m rellm.bin.train conf/train_rellm.yaml\n")
    by_stage = {stage: (recipes, pythons) for stage, recipes, pythons in stage_commands("exp", "dump/s", "s", 1)}
    assert by_stage["4 training"] == ([], ["python -m rellm.bin.train conf/train_rellm.yaml"])


def test_models_say_in_which_dtype_each_speech_llm_trained(tmp_path):
    """``llm_dtype: fast`` is bf16 on one machine and fp32 on another: RESULTS.md says what the run used."""
    for system, dtype in (("blsp_emo", "bfloat16"), ("rellm", "float32")):
        final = tmp_path / "exp" / system / "s" / "seed1" / "final"
        final.mkdir(parents=True)
        (final / "model.json").write_text(json.dumps({
            "model": {"llm_dtype": dtype}, "base_models": {"llm": str(tmp_path / "my_llm"), "speech_encoder": ""}}))
    found = dict(models(tmp_path / "exp", tmp_path / "dump", "s", 1))
    assert found["blsp_emo llm"].endswith("; frozen weights in bfloat16 during training")
    assert found["rellm llm"].endswith("; frozen weights in float32 during training")
    assert "blsp_emo speech_encoder" not in found
