"""tools/new_recipe.sh makes a complete recipe: every link resolves, every config the stages read is there (the
template's, linked, but for the copies its conf/overlay.yaml declares), the scripts parse and run, and it says
what to edit next. (Its dry run: test/recipes/test_dry_run.py, e2e.)"""
import subprocess
import sys
from pathlib import Path

import pytest
from test_recipes import LINKED, check_configs_follow_the_template, confs_read_by_stages, settings

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "test" / "recipes"))
from recipe_env import checkout_for_new_recipes


@pytest.fixture
def checkout(tmp_path):
    return tmp_path / "checkout", checkout_for_new_recipes(tmp_path / "checkout")


def new_recipe_sh(checkout, *args):
    root, script = checkout
    return subprocess.run([str(script), *args], cwd=root, capture_output=True, text=True, timeout=60, check=False)


def test_made_recipe_is_complete_and_runs(checkout, tool_env):
    result = new_recipe_sh(checkout, "demo", "corpus=esd", "nj=1")
    assert result.returncode == 0, result.stderr
    recipe = checkout[0] / "egs" / "demo"
    assert result.stdout.splitlines()[:2] == ["Created egs/demo for corpus esd.",
                                              ("Split, sets, conf/prepare.yaml and conf/overlay.yaml come from "
                                               "esd's recipe.")]
    assert "ESD=/path/to/it ./run.sh" in result.stdout and "cd egs/demo && ./run.sh --dry_run true" in result.stdout

    dangling = [str(p.relative_to(recipe)) for p in recipe.rglob("*") if not p.exists()]
    assert not dangling and all((recipe / name).is_symlink() for name in LINKED)
    missing = [c for c in confs_read_by_stages(recipe) if not (recipe / c).is_file()]
    assert not missing, missing
    overlay = check_configs_follow_the_template(recipe)
    assert overlay.overrides["train_rellm.yaml"] == {"avd_source": "encoder"}  # ESD's recipe's value
    assert settings(recipe / "run.sh")["corpus"] == "esd" and settings(recipe / "run.sh")["nj"] == "1"
    for script in ("run.sh", "stages.sh"):
        assert subprocess.run(["bash", "-n", str(recipe / script)], check=False).returncode == 0, script

    ran = subprocess.run(["./run.sh", "--stage", "99"], cwd=recipe, env=tool_env, capture_output=True, text=True,
                         timeout=60, check=False)
    assert ran.returncode == 0 and "Successfully finished" in ran.stdout, ran.stdout + ran.stderr
    helped = subprocess.run(["./run.sh", "--help"], cwd=recipe, env=tool_env, capture_output=True, text=True,
                            timeout=60, check=False)
    assert "  --corpus                   [esd]" in helped.stdout and "  --nj                       [1]" in helped.stdout


def test_made_configs_fit_the_stages(checkout):
    """Stage 1 takes the copied conf/prepare.yaml; the stage configs load with what run.sh passes."""
    from rellm.bin.prepare import preparer_arguments
    from rellm.data.corpora import get_preparer
    from rellm.utils.config import load_config

    assert new_recipe_sh(checkout, "demo", "corpus=iemocap").returncode == 0
    conf = checkout[0] / "egs" / "demo" / "conf"
    assert settings(conf.parent / "run.sh")["split"] == "fold5"  # the IEMOCAP recipe's protocol
    hparams = dict(load_config(conf / "prepare.yaml", {"corpus": "iemocap", "split": "fold5"}))
    hparams.pop("corpus")
    assert preparer_arguments("iemocap", get_preparer("iemocap"), hparams)["iemocap_classes"] == 4
    for name, needed in (("respond", {"manifest": "m.json", "output_dir": "o"}),
                         ("infer", {"system": "rellm", "model_dir": "e", "manifest": "m.json", "feats_dir": "d",
                                    "output_dir": "o"})):
        assert load_config(conf / f"{name}.yaml", needed)["batch_size"] == 16


def test_a_corpus_without_a_preparer_gets_the_steps_to_write_one(checkout):
    result = new_recipe_sh(checkout, "mine", "corpus=mycorpus", "split=official")
    assert result.returncode == 0, result.stderr
    assert "write rellm/data/corpora/mycorpus.py with prepare_mycorpus(" in result.stdout
    assert "rellm_db_root mycorpus" in result.stdout
    recipe = checkout[0] / "egs" / "mine"
    # the generic stage-1 config: the options every paper corpus's preparer takes
    assert (recipe / "conf" / "prepare.yaml").read_text() == (REPO_ROOT / "egs/TEMPLATE/conf/prepare.yaml").read_text()


def test_missing_corpus_is_an_error(checkout):
    result = new_recipe_sh(checkout, "demo")
    assert result.returncode == 1 and "corpus=CORPUS" in result.stderr
    assert not (checkout[0] / "egs" / "demo").exists()
