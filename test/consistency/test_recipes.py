"""Every recipe shares the template by construction: links, not copies.

A recipe's run.sh runs ``./stages.sh`` with its settings as flags, then ``-- "$0" "$@"``; stages.sh, cmd.sh,
path.sh, db.sh, conf/slurm.conf and utils are links to egs/TEMPLATE (and tools/). A paper recipe's stage configs
are links to the template's too, but for the copies its conf/overlay.yaml lists under own:, which may differ from
the template's only in the keys listed there; its overrides: name keys of the template's configs. egs/mini keeps
its own configs (CPU-sized on purpose).
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
RUN_SH_END, LINKED = _new_recipe_module.RUN_SH_END, _new_recipe_module.LINKED
new_recipe, set_variables, read_settings, stages_arguments = (
    _new_recipe_module.new_recipe, _new_recipe_module.set_variables, _new_recipe_module.read_settings,
    _new_recipe_module.stages_arguments)

EGS = REPO_ROOT / "egs"
TEMPLATE = EGS / "TEMPLATE"
RECIPES = sorted(p.name for p in EGS.iterdir() if p.is_dir() and p.name != "TEMPLATE")
PAPER_RECIPES = ("iemocap", "esd", "msp_podcast")
OWN_CONFIGS = ("mini",)  # recipes whose stage configs are all their own (no conf/overlay.yaml)
EXPECTED_SETTINGS = {
    "mini": {"corpus": "mini", "split": "official", "train_emotion_encoder": "true", "ngpu": "0", "nj": "2",
             "gen_nj": "2", "infer_nj": "2", "step1_data": "mini_asr", "blsp_emo_source": "trained"},
    "iemocap": {"corpus": "iemocap", "split": "fold5", "step1_data": "librispeech", "blsp_emo_source": "released"},
    "esd": {"corpus": "esd", "step1_data": "librispeech"},
    "msp_podcast": {"corpus": "msp_podcast", "test_sets": "test1 test2", "step1_data": "librispeech"},
}


def settings(run_sh):
    return read_settings(Path(run_sh))


def help_flags(recipe_dir):
    """``{flag: default}`` as ``./run.sh --help`` lists them (stages.sh's flags, with the recipe's values)."""
    out = subprocess.run(["./run.sh", "--help"], cwd=recipe_dir, capture_output=True, text=True, timeout=60,
                         check=True).stdout
    return dict(re.findall(r"^  --(\w+) +\[([^\]]*)\]", out, re.MULTILINE))


def confs_read_by_stages(recipe_dir):
    """The conf files stages.sh passes to the stages for this recipe (conf/train_<model>.yaml for its models,
    conf/emotion_encoder.yaml when it trains the emotion encoder)."""
    text = (TEMPLATE / "stages.sh").read_text(encoding="utf-8")
    confs = set(re.findall(r"\bconf/[a-z0-9_]+\.yaml\b", text))
    assert "conf/train_${model}.yaml" in text and "conf/prepare.yaml" in confs  # what this parse relies on
    ours = help_flags(recipe_dir)
    confs |= {f"conf/train_{model}.yaml" for model in ours["models"].split()}
    confs.discard("conf/overlay.yaml")  # read when present: the recipe's values, not a stage config
    if ours.get("train_emotion_encoder") != "true":
        confs.discard("conf/emotion_encoder.yaml")
    if ours.get("blsp_emo_source") != "released":
        confs.discard("conf/import_blsp_emo.yaml")
    if not ours.get("step1_data"):
        confs.discard("conf/prepare_step1.yaml")
    return sorted(confs | {"conf/slurm.conf"})  # cmd.sh's, with RELLM_CMD_BACKEND=slurm


def overlay_of(recipe_dir):
    from rellm.recipes.overlay import load_overlay

    return load_overlay(Path(recipe_dir) / "conf")


def check_configs_follow_the_template(recipe_dir):
    """Each template config in the recipe is a link to it, or a copy listed under own: in conf/overlay.yaml that
    differs from it only in the keys listed there; the overrides name keys that the configs have."""
    from rellm.recipes.overlay import drift

    recipe_dir = Path(recipe_dir)
    assert (recipe_dir / "conf" / "overlay.yaml").is_file(), f"{recipe_dir} has no conf/overlay.yaml"
    overlay = overlay_of(recipe_dir)  # loading checks the override keys against the (linked) configs
    problems = []
    for template_conf in sorted((TEMPLATE / "conf").glob("*.yaml")):
        name = template_conf.name
        ours = recipe_dir / "conf" / name
        if name == "overlay.yaml":
            continue
        if ours.is_symlink():
            if os.readlink(ours) != f"../../TEMPLATE/conf/{name}":
                problems.append(f"conf/{name} links to {os.readlink(ours)}, not ../../TEMPLATE/conf/{name}")
        elif name not in overlay.own:
            problems.append(f"conf/{name} is a copy: make it a link to ../../TEMPLATE/conf/{name}, or list it "
                            "under own: in conf/overlay.yaml with the keys in which it differs")
        else:
            drifted = sorted(set(drift(ours, template_conf)) - set(overlay.own[name]))
            if drifted:
                problems.append(f"conf/{name} differs from egs/TEMPLATE/conf/{name} in {', '.join(drifted)}, which "
                                "conf/overlay.yaml does not list under own: (fixed in the template, not here?)")
    assert not problems, f"{recipe_dir.name}: " + "; ".join(problems)
    return overlay


def test_the_four_recipes_exist():
    assert set(EXPECTED_SETTINGS) <= set(RECIPES)


@pytest.mark.parametrize("recipe", ["TEMPLATE", *RECIPES])
def test_run_sh_calls_the_shared_stages_with_its_settings(recipe):
    lines = (EGS / recipe / "run.sh").read_text(encoding="utf-8").splitlines()
    code = [line for line in lines if line.strip() and not line.startswith("#")]
    assert code[0] == "exec ./stages.sh \\" and code[-1] == RUN_SH_END, \
        f'egs/{recipe}/run.sh must be one call of ./stages.sh: its settings as flags, then -- "$0" "$@"'
    stale = [line for line in code[1:-1] if not re.match(r"^    --[a-z0-9_]+ \S.* \\$", line)]
    assert not stale, f"egs/{recipe}/run.sh holds more than settings (stage logic goes in egs/TEMPLATE/stages.sh): {stale}"
    assert os.access(EGS / recipe / "run.sh", os.X_OK)
    assert stages_arguments(EGS / recipe / "run.sh")[-2:] == ["--", "run.sh"]  # then the command as typed


@pytest.mark.parametrize("recipe, name", [(r, n) for r in RECIPES for n in sorted(LINKED)])
def test_shared_files_are_links_to_the_template(recipe, name):
    link = EGS / recipe / name
    assert link.is_symlink() and os.readlink(link) == LINKED[name], \
        f"egs/{recipe}/{name} must be a symlink to {LINKED[name]} (a copy goes stale), not a file"
    assert link.resolve() == (TEMPLATE / name).resolve() if name != "utils" else link.resolve() == REPO_ROOT / "tools"


@pytest.mark.parametrize("recipe", [r for r in RECIPES if r not in OWN_CONFIGS])
def test_recipe_configs_are_the_templates_but_for_what_the_overlay_declares(recipe):
    overlay = check_configs_follow_the_template(EGS / recipe)
    assert set(overlay.own) == {"prepare.yaml", "score.yaml"}  # the preparer's options, RESULTS.md's notes


def test_esd_sets_its_avd_source_through_the_overlay():
    assert overlay_of(EGS / "esd").overrides == {f"train_{m}.yaml": {"avd_source": "encoder"}
                                                 for m in ("blsp_emo", "blsp_emo_ft", "rellm")}
    assert overlay_of(EGS / "iemocap").overrides == overlay_of(EGS / "msp_podcast").overrides == {}


def test_a_drifted_copy_fails_the_check(tmp_path):
    recipe = tmp_path / "demo"
    (recipe / "conf").mkdir(parents=True)
    for conf in (TEMPLATE / "conf").iterdir():
        if conf.name not in ("overlay.yaml", "score.yaml"):
            (recipe / "conf" / conf.name).symlink_to(f"../../TEMPLATE/conf/{conf.name}")
    (tmp_path / "TEMPLATE").symlink_to(TEMPLATE)
    (recipe / "conf" / "overlay.yaml").write_text("own: {score.yaml: [notes]}\n")
    text = (TEMPLATE / "conf" / "score.yaml").read_text()
    (recipe / "conf" / "score.yaml").write_text(text.replace("notes: []", "notes: [mine]"))
    check_configs_follow_the_template(recipe)  # notes: declared
    (recipe / "conf" / "score.yaml").write_text(re.sub(r"(?m)^bootstrap_resamples: \d+", "bootstrap_resamples: 7",
                                                       text))
    with pytest.raises(AssertionError, match="score.yaml differs from egs/TEMPLATE/conf/score.yaml in "
                                             "bootstrap_resamples, which conf/overlay.yaml does not list"):
        check_configs_follow_the_template(recipe)
    (recipe / "conf" / "score.yaml").write_text(text)
    (recipe / "conf" / "respond.yaml").unlink()
    (recipe / "conf" / "respond.yaml").write_text((TEMPLATE / "conf" / "respond.yaml").read_text())
    with pytest.raises(AssertionError, match="conf/respond.yaml is a copy: make it a link"):
        check_configs_follow_the_template(recipe)


def test_the_template_overlay_lists_what_new_recipes_copy():
    overlay = overlay_of(TEMPLATE)
    assert overlay.overrides == {} and set(overlay.own) == set(_new_recipe_module.TEMPLATE_OWN)


def test_mini_keeps_its_own_configs():
    assert not (EGS / "mini" / "conf" / "overlay.yaml").exists()
    assert not [p.name for p in (EGS / "mini" / "conf").glob("*.yaml") if p.is_symlink()]


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_sets_the_template_settings(recipe):
    ours = settings(EGS / recipe / "run.sh")
    assert ours.keys() == settings(TEMPLATE / "run.sh").keys()
    for name, value in EXPECTED_SETTINGS.get(recipe, {}).items():
        assert ours[name] == value, f"egs/{recipe}/run.sh: {name}={ours[name]}, expected {value}"
    flags = help_flags(EGS / recipe)
    assert {k: flags[k] for k in ours} == ours  # stages.sh took each one as a flag


def test_the_stage_args_list_holds_every_stage_args_flag():
    """stages.sh's one list of --*_args flags (--overwrite, the dry run) is the --*_args flags of its help; an
    entry per stage command, its first flag the stage's, the others one model's each."""
    text = (TEMPLATE / "stages.sh").read_text(encoding="utf-8")
    entries = re.search(r"^stage_args=\((.*?)\)$", text, re.MULTILINE | re.DOTALL).group(1)
    flags = help_flags(TEMPLATE)
    assert sorted(entries.replace('"', " ").split()) == sorted(f for f in flags if f.endswith("_args"))
    train = next(e for e in re.findall(r'"([^"]+)"', entries) if e.startswith("train_args"))
    assert train.split()[1:] == [f"{m}_args" for m in flags["models"].split()]


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
    recipe, corpus_recipe, kept = new_recipe("demo", {"corpus": "foo", "test_sets": "a b", "seed": "2"}, egs=tmp_path)
    assert corpus_recipe is None and kept == ["conf/score.yaml"]
    assert (recipe / "conf" / "score.yaml").read_text() == "notes: [mine]\n"
    # any flag of stages.sh: the template's settings get their new value, another flag is added
    assert settings(recipe / "run.sh") == {**settings(TEMPLATE / "run.sh"), "corpus": "foo", "test_sets": "a b",
                                           "seed": "2"}
    assert os.access(recipe / "run.sh", os.X_OK)
    assert {name: os.readlink(recipe / name) for name in LINKED} == LINKED
    assert (recipe / "conf" / "prepare.yaml").read_text() == (TEMPLATE / "conf" / "prepare.yaml").read_text()
    assert not (recipe / "conf" / "prepare.yaml").is_symlink()
    assert os.readlink(recipe / "conf" / "train_rellm.yaml") == "../../TEMPLATE/conf/train_rellm.yaml"
    assert (recipe / "conf" / "overlay.yaml").read_text() == (TEMPLATE / "conf" / "overlay.yaml").read_text()
    with pytest.raises(ValueError, match="already has run.sh"):
        new_recipe("demo", {"corpus": "foo"}, egs=tmp_path)
    with pytest.raises(ValueError, match="unknown option --corpora"):
        new_recipe("other", {"corpus": "foo", "corpora": "x"}, egs=tmp_path)
    with pytest.raises(ValueError, match="--dry_run takes true or false, got 'maybe'"):
        new_recipe("other", {"corpus": "foo", "dry_run": "maybe"}, egs=tmp_path)
    assert not (tmp_path / "other").exists()  # checked before anything is written
    with pytest.raises(ValueError, match="corpus=CORPUS"):
        new_recipe("third", {"split": "fold1"}, egs=tmp_path)


def test_new_recipe_starts_from_the_data_settings_and_overlay_of_the_corpus_recipe(tmp_path):
    for name in ("TEMPLATE", "msp_podcast", "esd"):
        (tmp_path / name).symlink_to(EGS / name)
    recipe, corpus_recipe, _ = new_recipe("demo", {"corpus": "msp_podcast", "nj": "1"}, egs=tmp_path)
    assert corpus_recipe == tmp_path / "msp_podcast"
    ours = settings(recipe / "run.sh")
    assert (ours["test_sets"], ours["split"], ours["nj"]) == ("test1 test2", "official", "1")
    assert ours["step1_data"] == ""  # the template's, not the corpus recipe's: only the data settings are taken
    assert (recipe / "conf" / "prepare.yaml").read_text() == (EGS / "msp_podcast" / "conf" / "prepare.yaml").read_text()
    assert (recipe / "conf" / "score.yaml").read_text() == (TEMPLATE / "conf" / "score.yaml").read_text()
    recipe, _, _ = new_recipe("demo_esd", {"corpus": "esd"}, egs=tmp_path)
    assert overlay_of(recipe).overrides == overlay_of(EGS / "esd").overrides  # ESD's avd_source: encoder
    check_configs_follow_the_template(recipe)


def test_set_variables_keeps_the_call_shape():
    text = f"exec ./stages.sh \\\n    --corpus TEMPLATE \\\n    --nj 4 \\\n{RUN_SH_END}\n"
    out = set_variables(text, {"corpus": "msp_podcast", "test_sets": "a b"})
    assert out.splitlines() == ["exec ./stages.sh \\", "    --corpus msp_podcast \\", "    --nj 4 \\",
                                '    --test_sets "a b" \\', RUN_SH_END]
    with pytest.raises(ValueError, match="ending its call of ./stages.sh"):
        set_variables("corpus=x\n", {"corpus": "y"})


def test_new_recipe_sh_reports_errors():
    result = subprocess.run([str(REPO_ROOT / "tools" / "new_recipe.sh"), "TEMPLATE"], capture_output=True, text=True, check=False)
    assert result.returncode == 1 and "not TEMPLATE" in result.stderr
