"""Every recipe shares the template: the same cmd.sh, conf/slurm.conf, path.sh, db.sh and stage section.

A recipe differs from egs/TEMPLATE only in the settings at the top of run.sh (above ``. ./path.sh``)
and in its conf/*.yaml. Fix a drift by changing egs/TEMPLATE and recreating or copying into the recipe.
"""
import difflib
import filecmp
import importlib.util
import os
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# tools/new_recipe.py is a script, not a package module: load it from its path
_spec = importlib.util.spec_from_file_location("new_recipe", REPO_ROOT / "tools" / "new_recipe.py")
_new_recipe_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_new_recipe_module)
STAGE_SECTION_START = _new_recipe_module.STAGE_SECTION_START
new_recipe, set_variables = _new_recipe_module.new_recipe, _new_recipe_module.set_variables

TEMPLATE = REPO_ROOT / "egs" / "TEMPLATE"
RECIPES = sorted(p.name for p in (REPO_ROOT / "egs").iterdir() if p.is_dir() and p.name != "TEMPLATE")
EXPECTED_SETTINGS = {
    "mini": {"corpus": "mini", "split": "official", "train_emotion_encoder": "true", "ngpu": "0", "nj": "2",
             "gen_nj": "2", "infer_nj": "2", "step1_data": "mini_asr"},
    "iemocap": {"corpus": "iemocap", "split": "fold5", "step1_data": "librispeech"},
    "esd": {"corpus": "esd", "step1_data": "librispeech"},
    "msp_podcast": {"corpus": "msp_podcast", "test_sets": '"test1 test2"', "step1_data": "librispeech"},
}


def stage_section(run_sh):
    lines = Path(run_sh).read_text(encoding="utf-8").splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == STAGE_SECTION_START]
    assert starts, f"{run_sh} has no '{STAGE_SECTION_START}' line"
    return lines[starts[0]:]


def settings(run_sh):
    out = {}
    for line in Path(run_sh).read_text(encoding="utf-8").splitlines():
        if line.strip() == STAGE_SECTION_START:
            break
        if "=" in line and not line.startswith((" ", "#")):
            name, value = line.split("=", 1)
            out[name] = value.split("  #")[0].split(" #")[0].strip()
    return out


def test_the_four_recipes_exist():
    assert set(EXPECTED_SETTINGS) <= set(RECIPES)


@pytest.mark.parametrize("recipe", RECIPES)
def test_stage_section_matches_template(recipe):
    template, ours = stage_section(TEMPLATE / "run.sh"), stage_section(REPO_ROOT / "egs" / recipe / "run.sh")
    diff = "\n".join(difflib.unified_diff(template, ours, "egs/TEMPLATE/run.sh", f"egs/{recipe}/run.sh", lineterm=""))
    assert not diff, f"egs/{recipe}/run.sh drifted from the template's stage section:\n{diff}"


@pytest.mark.parametrize("recipe", RECIPES)
@pytest.mark.parametrize("name", ["cmd.sh", "conf/slurm.conf"])
def test_copied_files_match_template(recipe, name):
    ours = REPO_ROOT / "egs" / recipe / name
    assert ours.is_file(), f"egs/{recipe}/{name} is missing (tools/new_recipe.sh creates it)"
    assert filecmp.cmp(TEMPLATE / name, ours, shallow=False), f"egs/{recipe}/{name} differs from egs/TEMPLATE/{name}"


@pytest.mark.parametrize("recipe", RECIPES)
@pytest.mark.parametrize("name, target", [("path.sh", "../TEMPLATE/path.sh"), ("db.sh", "../TEMPLATE/db.sh"),
                                          ("utils", "../../tools")])
def test_shared_files_are_links(recipe, name, target):
    link = REPO_ROOT / "egs" / recipe / name
    assert link.is_symlink() and os.readlink(link) == target, f"egs/{recipe}/{name} must be a symlink to {target}"


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_has_the_template_settings(recipe):
    assert settings(REPO_ROOT / "egs" / recipe / "run.sh").keys() == settings(TEMPLATE / "run.sh").keys()
    ours = settings(REPO_ROOT / "egs" / recipe / "run.sh")
    for name, value in EXPECTED_SETTINGS.get(recipe, {}).items():
        assert ours[name] == value, f"egs/{recipe}/run.sh: {name}={ours[name]}, expected {value}"


def test_new_recipe_copies_links_and_sets_variables(tmp_path):
    (tmp_path / "demo" / "conf").mkdir(parents=True)
    (tmp_path / "demo" / "conf" / "train.yaml").write_text("lr: 1\n")  # kept: a recipe folder may pre-exist
    recipe = new_recipe("demo", {"corpus": "esd", "test_sets": "a b"}, egs=tmp_path)
    assert stage_section(recipe / "run.sh") == stage_section(TEMPLATE / "run.sh")
    assert settings(recipe / "run.sh")["corpus"] == "esd" and settings(recipe / "run.sh")["test_sets"] == '"a b"'
    assert os.access(recipe / "run.sh", os.X_OK)
    assert os.readlink(recipe / "utils") == "../../tools" and (recipe / "conf" / "train.yaml").read_text() == "lr: 1\n"
    with pytest.raises(ValueError, match="already has run.sh"):
        new_recipe("demo", {}, egs=tmp_path)
    with pytest.raises(ValueError, match="no setting\\(s\\) corpora"):
        new_recipe("other", {"corpora": "x"}, egs=tmp_path)


def test_set_variables_keeps_comment_column():
    text = "corpus=TEMPLATE          # preparer name\nx=1\n. ./path.sh\ncorpus=late\n"
    assert set_variables(text, {"corpus": "msp_podcast"}).splitlines()[0] == "corpus=msp_podcast       # preparer name"
    assert set_variables(text, {"corpus": "x"}).splitlines()[3] == "corpus=late"  # stage section untouched


def test_new_recipe_sh_reports_errors(tmp_path):
    result = subprocess.run([str(REPO_ROOT / "tools" / "new_recipe.sh"), "TEMPLATE"], capture_output=True, text=True, check=False)
    assert result.returncode == 1 and "not TEMPLATE" in result.stderr


def test_epitome_config_is_shared_and_the_paper_recipes_use_roberta_base():
    import yaml

    conf = {r: yaml.safe_load((REPO_ROOT / "egs" / r / "conf" / "epitome.yaml").read_text(encoding="utf-8"))
            for r in EXPECTED_SETTINGS}
    assert {r: c["encoder"] for r, c in conf.items()} == {
        "mini": "minilm-l6", "iemocap": "roberta-base", "esd": "roberta-base", "msp_podcast": "roberta-base"}
    rest = {r: {k: v for k, v in c.items() if k != "encoder"} for r, c in conf.items()}
    assert all(v == rest["mini"] for v in rest.values())  # only the encoder differs
