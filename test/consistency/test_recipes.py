"""Every recipe shares the template by construction: links, not copies.

A recipe's run.sh is its settings followed by ``. ./stages.sh "$@"``; stages.sh, cmd.sh, path.sh, db.sh,
conf/slurm.conf and utils are links to egs/TEMPLATE (and tools/), and the paper recipes link the template's
conf/epitome.yaml. A recipe differs only in those settings and its own conf/*.yaml.
"""
import importlib.util
import os
import re
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# tools/new_recipe.py is a script, not a package module: load it from its path
_spec = importlib.util.spec_from_file_location("new_recipe", REPO_ROOT / "tools" / "new_recipe.py")
_new_recipe_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_new_recipe_module)
STAGE_SECTION_START, LINKED = _new_recipe_module.STAGE_SECTION_START, _new_recipe_module.LINKED
new_recipe, set_variables, read_settings = (_new_recipe_module.new_recipe, _new_recipe_module.set_variables,
                                            _new_recipe_module.read_settings)

EGS = REPO_ROOT / "egs"
TEMPLATE = EGS / "TEMPLATE"
RECIPES = sorted(p.name for p in EGS.iterdir() if p.is_dir() and p.name != "TEMPLATE")
PAPER_RECIPES = ("iemocap", "esd", "msp_podcast")
EXPECTED_SETTINGS = {
    "mini": {"corpus": "mini", "split": "official", "train_emotion_encoder": "true", "ngpu": "0", "nj": "2",
             "gen_nj": "2", "infer_nj": "2", "step1_data": "mini_asr", "blsp_emo_source": "trained"},
    "iemocap": {"corpus": "iemocap", "split": "fold5", "step1_data": "librispeech", "blsp_emo_source": "released"},
    "esd": {"corpus": "esd", "step1_data": "librispeech"},
    "msp_podcast": {"corpus": "msp_podcast", "test_sets": "test1 test2", "step1_data": "librispeech"},
}


def settings(run_sh):
    return read_settings(Path(run_sh).read_text(encoding="utf-8"))


def stages_flags():
    """The flags of stages.sh: its top-level assignments above the line sourcing utils/parse_options.sh."""
    names = []
    for line in (TEMPLATE / "stages.sh").read_text(encoding="utf-8").splitlines():
        if re.match(r"^\.\s+utils/parse_options\.sh", line):
            return names
        match = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)=", line)
        if match:
            names.append(match.group(1))
    raise AssertionError("stages.sh does not source utils/parse_options.sh")


def confs_read_by_stages(recipe_dir):
    """The conf files stages.sh passes to the stages for this recipe (conf/train_<model>.yaml for its models,
    conf/emotion_encoder.yaml when it trains the emotion encoder)."""
    text = (TEMPLATE / "stages.sh").read_text(encoding="utf-8")
    confs = set(re.findall(r"\bconf/[a-z0-9_]+\.yaml\b", text))
    assert "conf/train_${model}.yaml" in text and "conf/prepare.yaml" in confs  # what this parse relies on
    ours = settings(Path(recipe_dir) / "run.sh")
    models = re.search(r'^models=\$\{models-"([^"]*)"\}', text, re.MULTILINE).group(1)
    confs |= {f"conf/train_{model}.yaml" for model in models.split()}
    if ours.get("train_emotion_encoder") != "true":
        confs.discard("conf/emotion_encoder.yaml")
    if ours.get("blsp_emo_source") != "released":
        confs.discard("conf/import_blsp_emo.yaml")
    if not ours.get("step1_data"):
        confs.discard("conf/prepare_step1.yaml")
    return sorted(confs | {"conf/slurm.conf"})  # cmd.sh's, with RELLM_CMD_BACKEND=slurm


def test_the_four_recipes_exist():
    assert set(EXPECTED_SETTINGS) <= set(RECIPES)


@pytest.mark.parametrize("recipe", ["TEMPLATE", *RECIPES])
def test_run_sh_is_settings_then_the_shared_stages(recipe):
    lines = (EGS / recipe / "run.sh").read_text(encoding="utf-8").splitlines()
    code = [line for line in lines if line.strip() and not line.startswith("#")]
    assert code[-1] == STAGE_SECTION_START, f"egs/{recipe}/run.sh must end by sourcing the shared stages"
    stale = [line for line in code[:-1] if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", line)]
    assert not stale, f"egs/{recipe}/run.sh holds more than settings (stage logic goes in egs/TEMPLATE/stages.sh): {stale}"
    assert os.access(EGS / recipe / "run.sh", os.X_OK)


# conf/epitome.yaml: the paper recipes share one (the same cached classifiers); mini has its own small encoder
@pytest.mark.parametrize("recipe, name", [(r, n) for r in RECIPES for n in sorted(LINKED)
                                          if n != "conf/epitome.yaml" or r in PAPER_RECIPES])
def test_shared_files_are_links_to_the_template(recipe, name):
    link = EGS / recipe / name
    assert link.is_symlink() and os.readlink(link) == LINKED[name], \
        f"egs/{recipe}/{name} must be a symlink to {LINKED[name]} (a copy goes stale), not a file"
    assert link.resolve() == (TEMPLATE / name).resolve() if name != "utils" else link.resolve() == REPO_ROOT / "tools"


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_sets_the_template_settings(recipe):
    ours = settings(EGS / recipe / "run.sh")
    assert ours.keys() == settings(TEMPLATE / "run.sh").keys()
    for name, value in EXPECTED_SETTINGS.get(recipe, {}).items():
        assert ours[name] == value, f"egs/{recipe}/run.sh: {name}={ours[name]}, expected {value}"


def test_every_setting_is_a_flag_of_stages_sh():
    """parse_options.sh reads the flags from stages.sh: a setting it does not list could not be changed."""
    flags = stages_flags()
    assert set(settings(TEMPLATE / "run.sh")) <= set(flags)
    assert len(flags) == len(set(flags)) and flags[0] == "corpus" and "python" in flags


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_conf_the_stages_read_exists(recipe):
    missing = [c for c in confs_read_by_stages(EGS / recipe) if not (EGS / recipe / c).is_file()]
    assert not missing, f"egs/{recipe} lacks {missing}"


@pytest.mark.parametrize("recipe", ["TEMPLATE", *RECIPES])
def test_scripts_parse(recipe):
    for script in ("run.sh", "stages.sh"):
        result = subprocess.run(["bash", "-n", str(EGS / recipe / script)], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr


def test_paper_recipes_share_the_epitome_config_and_mini_differs_only_in_the_encoder():
    import yaml

    conf = {r: yaml.safe_load((EGS / r / "conf" / "epitome.yaml").read_text(encoding="utf-8")) for r in EXPECTED_SETTINGS}
    assert {r: c["encoder"] for r, c in conf.items()} == {
        "mini": "minilm-l6", "iemocap": "roberta-base", "esd": "roberta-base", "msp_podcast": "roberta-base"}
    assert not (EGS / "mini" / "conf" / "epitome.yaml").is_symlink()
    rest = {r: {k: v for k, v in c.items() if k != "encoder"} for r, c in conf.items()}
    assert all(v == rest["mini"] for v in rest.values())  # only the encoder differs


def test_new_recipe_links_copies_and_sets_variables(tmp_path):
    (tmp_path / "TEMPLATE").symlink_to(TEMPLATE)
    (tmp_path / "demo" / "conf").mkdir(parents=True)
    (tmp_path / "demo" / "conf" / "score.yaml").write_text("notes: [mine]\n")  # kept: a recipe folder may pre-exist
    recipe, corpus_recipe, kept = new_recipe("demo", {"corpus": "foo", "test_sets": "a b"}, egs=tmp_path)
    assert corpus_recipe is None and kept == ["conf/score.yaml"]
    assert (recipe / "conf" / "score.yaml").read_text() == "notes: [mine]\n"
    assert settings(recipe / "run.sh") == {**settings(TEMPLATE / "run.sh"), "corpus": "foo", "test_sets": "a b"}
    assert os.access(recipe / "run.sh", os.X_OK)
    assert {name: os.readlink(recipe / name) for name in LINKED} == LINKED
    assert (recipe / "conf" / "prepare.yaml").read_text() == (TEMPLATE / "conf" / "prepare.yaml").read_text()
    with pytest.raises(ValueError, match="already has run.sh"):
        new_recipe("demo", {"corpus": "foo"}, egs=tmp_path)
    with pytest.raises(ValueError, match="no setting\\(s\\) corpora"):
        new_recipe("other", {"corpus": "foo", "corpora": "x"}, egs=tmp_path)
    with pytest.raises(ValueError, match="corpus=CORPUS"):
        new_recipe("third", {"split": "fold1"}, egs=tmp_path)


def test_new_recipe_starts_from_the_data_settings_of_the_corpus_recipe(tmp_path):
    for name in ("TEMPLATE", "msp_podcast"):
        (tmp_path / name).symlink_to(EGS / name)
    recipe, corpus_recipe, _ = new_recipe("demo", {"corpus": "msp_podcast", "nj": "1"}, egs=tmp_path)
    assert corpus_recipe == tmp_path / "msp_podcast"
    ours = settings(recipe / "run.sh")
    assert (ours["test_sets"], ours["split"], ours["nj"]) == ("test1 test2", "official", "1")
    assert ours["step1_data"] == ""  # the template's, not the corpus recipe's: only the data settings are taken
    assert (recipe / "conf" / "prepare.yaml").read_text() == (EGS / "msp_podcast" / "conf" / "prepare.yaml").read_text()


def test_set_variables_keeps_comment_column():
    text = f'corpus=TEMPLATE          # preparer name\nx=1\n{STAGE_SECTION_START}\ncorpus=late\n'
    assert set_variables(text, {"corpus": "msp_podcast"}).splitlines()[0] == "corpus=msp_podcast       # preparer name"
    assert set_variables(text, {"corpus": "x"}).splitlines()[3] == "corpus=late"  # below the settings: untouched


def test_new_recipe_sh_reports_errors():
    result = subprocess.run([str(REPO_ROOT / "tools" / "new_recipe.sh"), "TEMPLATE"], capture_output=True, text=True, check=False)
    assert result.returncode == 1 and "not TEMPLATE" in result.stderr
