"""egs/TEMPLATE/run.sh (./stages.sh called with its settings as flags, then the user's command) driven with a fake
--python that records the stages' arguments.

This tests the stage logic (selection, logging, job logs, failures) without running the stages.
"""
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

FAKE_PYTHON = """#!/usr/bin/env bash
[ "$2" = rellm.bin.check_gpu ] && exit 0  # the GPU check before stage 1, not a stage (test/recipes/test_check_gpu.py)
case "$2" in rellm.recipes.*) exec python3 "$@" ;; esac  # the recipe helpers (overlay, dry run, ablations) answer
printf '%s\\n' "$*" >> "${FAKE_PYTHON_RECORD}"
printf '%s\\n' "${RELLM_RECIPE_COMMAND-unset}" >> "${FAKE_PYTHON_RECORD}.command"
if [ -n "${FAKE_PYTHON_FAIL:-}" ] && [[ "$*" == *"${FAKE_PYTHON_FAIL}"* ]]; then
    echo "boom: failing on purpose in $2" >&2
    exit 3
fi
echo "fake python ran $2"
"""
TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d"


@pytest.fixture
def fake(tmp_path, tool_env):
    python = tmp_path / "fake_python"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    record = tmp_path / "calls.txt"
    env = {k: v for k, v in tool_env.items() if k not in ("IEMOCAP", "ESD", "MSP_PODCAST", "BLSP_EMO", "QWEN_7B_CHAT")}
    env["FAKE_PYTHON_RECORD"] = str(record)
    return python, record, env


def run_sh(repo_root, tmp_path, fake, *args, **env):
    python, _, base_env = fake
    outputs = ["--datadir", str(tmp_path / "data"), "--dumpdir", str(tmp_path / "dump"),
               "--expdir", str(tmp_path / "exp")]
    return subprocess.run(["./run.sh", "--python", str(python), "--nj", "2", "--gen_nj", "2", "--infer_nj", "2",
                           *outputs, *args], cwd=repo_root / "egs" / "TEMPLATE", env={**base_env, **env},
                          capture_output=True, text=True, timeout=300, check=False)


def modules(record):
    """The rellm.bin modules called, in order, without consecutive repeats."""
    called = []
    if record.exists():
        for line in record.read_text().splitlines():
            name = line.split()[1].removeprefix("rellm.bin.")
            if not called or called[-1] != name:
                called.append(name)
    return called


def test_help_lists_flags(repo_root):
    result = subprocess.run(["./run.sh", "--help"], cwd=repo_root / "egs" / "TEMPLATE", capture_output=True, text=True, check=False)
    assert result.returncode == 0
    # run.sh's usage and header comment; the flags of stages.sh, with run.sh's values as defaults
    assert result.stdout.startswith("Usage: ./run.sh [--flag value ...]\nRE-LLM recipe: speech-LLM")
    for flag in ("--stage", "--stop_stage", "--corpus", "--nj", "--ngpu", "--train_args", "--python"):
        assert re.search(rf"^  {flag} +\[", result.stdout, re.MULTILINE), flag
    assert re.search(r"^  --corpus +\[TEMPLATE\]  preparer name", result.stdout, re.MULTILINE)


def test_unknown_flag_is_an_error(repo_root, tmp_path, fake):
    result = run_sh(repo_root, tmp_path, fake, "--stages", "2")
    assert result.returncode != 0 and "ERROR: run.sh: unknown option --stages (see run.sh --help)" in result.stderr
    assert not fake[1].exists()


def test_environment_variables_are_not_flags(repo_root, tmp_path, fake):
    """As when run.sh held every flag: an exported variable named like one (stage, nj) changes nothing."""
    result = run_sh(repo_root, tmp_path, fake, "--corpus", "mini", "--stop_stage", "1", stage="4", split="fold1",
                    test_sets="other")
    assert result.returncode == 0, result.stdout + result.stderr
    assert modules(fake[1]) == ["prepare"] and "--split official" in fake[1].read_text()


def test_python_stages_get_the_typed_command(repo_root, tmp_path, fake):
    result = run_sh(repo_root, tmp_path, fake, "--stage", "4", "--stop_stage", "4", "--blsp_emo_source", "trained",
                    "--models", "rellm", "--train_args", "--lr=1 --x='a b'")
    assert result.returncode == 0, result.stderr
    commands = set(Path(f"{fake[1]}.command").read_text().splitlines())
    assert len(commands) == 1
    (command,) = commands
    assert command.startswith("./run.sh --python ") and command.endswith(r"--train_args --lr=1\ --x=\'a\ b\'")
    assert shlex.split(command)[-1] == "--lr=1 --x='a b'"  # quoted so that it can be pasted back


def test_all_stages_in_order_with_logs(repo_root, tmp_path, fake):
    result = run_sh(repo_root, tmp_path, fake, "--corpus", "mini", "--train_emotion_encoder", "true",
                    "--emotion_encoder_conf", str(repo_root / "egs/mini/conf/emotion_encoder.yaml"),
                    "--blsp_emo_source", "trained")
    assert result.returncode == 0, result.stdout + result.stderr
    assert modules(fake[1]) == ["prepare", "train_emotion_encoder", "extract", "respond", "train", "infer", "epitome",
                                "score", "results"]
    out = result.stdout
    assert re.search(rf"^{TIMESTAMP} \(stages.sh:\d+\) ./run.sh --python .* --corpus mini", out, re.MULTILINE)
    for stage in range(1, 7):
        assert re.search(rf"^{TIMESTAMP} \(stages.sh:\d+\) Stage {stage}", out, re.MULTILINE), stage
    assert f"log(s): {tmp_path}/dump/official/train/log/extract.1.log {tmp_path}/dump/official/train/log/extract.2.log" in out
    assert f"log(s): {tmp_path}/exp/rellm/official/seed1/train.log" in out
    assert re.search(r"Successfully finished\. \[elapsed=\d+s\]", out)
    log = (tmp_path / "dump/official/valid/log/extract.2.log").read_text().splitlines()
    assert "--shard 2 --num_shards 2" in log[0] and log[-1].startswith("# Ended (code 0)")
    # stage 3 also writes the teacher's expected responses for the test set (only that task; stage 6 reads them)
    respond = [line for line in fake[1].read_text().splitlines() if "rellm.bin.respond" in line]
    test_calls = [line for line in respond if "/official/test.json" in line]
    assert len(test_calls) == 3 and all("--tasks=[expected]" in line for line in test_calls)
    assert not any("--tasks" in line for line in respond if "/official/test.json" not in line)
    score = next(line for line in fake[1].read_text().splitlines() if "rellm.bin.score" in line)
    assert "--train_set train" in score
    # the time per stage, in run order, before the final line
    table = out[out.index("Time per stage:"):].splitlines()
    assert table[1].split() == ["stage", "seconds"]
    assert [row.split()[0] for row in table[2:9]] == ["1", "2a", "2", "3", "4", "5", "6"]
    assert all(row.split()[1].isdigit() for row in table[2:9]) and "Successfully finished" in table[9]


def test_missing_emotion_encoder_conf_says_where_to_get_one(repo_root, tmp_path, fake):
    result = run_sh(repo_root, tmp_path, fake, "--stage", "2", "--train_emotion_encoder", "true")
    assert result.returncode == 1 and modules(fake[1]) == []
    assert "train_emotion_encoder=true needs conf/emotion_encoder.yaml: copy egs/mini/conf/emotion_encoder.yaml" \
        in result.stderr and "--dry_run true" in result.stderr


def test_per_model_args_and_overwrite_reach_stage_4(repo_root, tmp_path, fake):
    result = run_sh(repo_root, tmp_path, fake, "--stage", "4", "--stop_stage", "4", "--blsp_emo_source", "trained",
                    "--train_args", "--lr=1", "--rellm_args", "--lambda_dim=2", "--overwrite", "true")
    assert result.returncode == 0, result.stderr
    calls = [line for line in fake[1].read_text().splitlines() if "rellm.bin.train " in line]
    assert calls[0].startswith("-m rellm.bin.train conf/train_blsp_emo.yaml") and "--lambda_dim" not in calls[0]
    assert calls[0].endswith("--lr=1 --overwrite=true")
    # the matched control trains between them, with its own config and without RE-LLM's own overrides
    assert calls[1].startswith("-m rellm.bin.train conf/train_blsp_emo_ft.yaml") and calls[1].endswith("--lr=1 --overwrite=true")
    assert calls[2].endswith("--lr=1 --overwrite=true --lambda_dim=2")


def test_an_ablation_trains_rellm_alone_into_its_tag_and_scores_beside_the_main_baselines(repo_root, tmp_path, fake):
    result = run_sh(repo_root, tmp_path, fake, "--stage", "4", "--blsp_emo_source", "trained",
                    "--ablation", "no_avd")
    assert result.returncode == 0, result.stderr
    lines = fake[1].read_text().splitlines()
    train = [line for line in lines if "rellm.bin.train " in line]
    assert len(train) == 1 and "conf/train_rellm.yaml" in train[0] and train[0].endswith("--lambda_dim=0.0")
    exp = tmp_path / "exp"
    assert f"--output_folder {exp}/no_avd/rellm/official/seed1" in train[0] and f"--exp_root {exp} " in train[0]
    infer = {line.split("--system ")[1].split()[0]: line for line in lines if "rellm.bin.infer" in line}
    assert f"--model_dir {exp}/no_avd/rellm/official/seed1" in infer["rellm"]
    assert f"--model_dir {exp}/blsp_emo/official/seed1" in infer["blsp_emo"]  # the main run's baseline
    score = next(line for line in lines if "rellm.bin.score" in line)
    assert "--tag no_avd" in score and f"--output_dir {exp}/no_avd/scores/official/seed1/test" in score
    results = next(line for line in lines if "rellm.bin.results" in line)
    assert "--tag no_avd" in results
    result = run_sh(repo_root, tmp_path, fake, "--stage", "4", "--ablation", "no_such_thing")
    assert result.returncode != 0 and "unknown ablation 'no_such_thing'" in result.stderr


@pytest.mark.parametrize("flag", ["--stop_stage", "--stop-stage"])
def test_stage_selection(repo_root, tmp_path, fake, flag):
    result = run_sh(repo_root, tmp_path, fake, "--stage", "3", flag, "4", "--blsp_emo_source", "trained")
    assert result.returncode == 0, result.stderr
    assert modules(fake[1]) == ["respond", "train"]
    assert "Stage 2" not in result.stdout and "Stage 5" not in result.stdout
    table = result.stdout[result.stdout.index("Time per stage:"):].splitlines()
    assert [row.split()[0] for row in table[2:4]] == ["3", "4"] and "Successfully finished" in table[4]


def test_released_blsp_emo_is_imported_not_trained(repo_root, tmp_path, fake):
    """The paper's setting (the template's default): stage 4 imports BLSP_EMO, then trains RE-LLM from it."""
    result = run_sh(repo_root, tmp_path, fake, "--stage", "4", "--stop_stage", "4")
    assert result.returncode != 0 and "BLSP_EMO is not set" in result.stderr
    assert "--blsp_emo_source trained" in result.stderr and modules(fake[1]) == []

    released = tmp_path / "blsp-emo"
    released.mkdir()
    result = run_sh(repo_root, tmp_path, fake, "--stage", "4", "--stop_stage", "4", BLSP_EMO=str(released))
    assert result.returncode == 0, result.stderr
    assert modules(fake[1]) == ["import_blsp_emo", "train"]
    calls = fake[1].read_text().splitlines()
    assert f"--src {released} --output_folder {tmp_path}/exp/blsp_emo/official/seed1" in calls[0]
    # then the matched control and RE-LLM, both continuing the imported checkpoint
    assert "conf/train_blsp_emo_ft.yaml" in calls[1] and "conf/train_rellm.yaml" in calls[2]

    result = run_sh(repo_root, tmp_path, fake, "--stage", "4", "--stop_stage", "4", "--blsp_emo_source", "both")
    assert result.returncode != 0 and "must be 'released' or 'trained'" in result.stderr


def test_licensed_corpus_root_only_needed_by_stage_1(repo_root, tmp_path, fake):
    result = run_sh(repo_root, tmp_path, fake, "--corpus", "iemocap", "--stop_stage", "1")
    assert result.returncode != 0
    assert "IEMOCAP is not set" in result.stderr and "Get the corpus from" in result.stderr
    assert modules(fake[1]) == [] and "Successfully finished" not in result.stdout

    result = run_sh(repo_root, tmp_path, fake, "--corpus", "iemocap", "--stage", "2", "--stop_stage", "2")
    assert result.returncode == 0, result.stderr
    assert modules(fake[1]) == ["extract"]


def test_failing_job_shows_the_tail_of_its_log(repo_root, tmp_path, fake):
    result = run_sh(repo_root, tmp_path, fake, "--stage", "2", "--stop_stage", "3", FAKE_PYTHON_FAIL="--shard 2")
    assert result.returncode != 0
    failed_log = f"{tmp_path}/dump/official/train/log/extract.2.log"
    assert f"1 of 2 job(s) failed: {failed_log} (exit code 3)" in result.stderr
    assert f"last lines of {failed_log}" in result.stderr
    assert "boom: failing on purpose in rellm.bin.extract" in result.stderr
    assert "Successfully finished" not in result.stdout
    assert "respond" not in modules(fake[1])  # run.sh stopped at the failing stage


def test_slurm_backend_selected_by_environment(repo_root, tmp_path, fake):
    # sbatch is looked up only when a job is submitted; an unknown backend is refused before anything runs
    result = run_sh(repo_root, tmp_path, fake, "--stage", "6", RELLM_CMD_BACKEND="pbs")
    assert result.returncode != 0 and "RELLM_CMD_BACKEND=pbs: expected 'local' or 'slurm'" in result.stderr
    assert not fake[1].exists()


def test_path_sh_sets_environment(repo_root, tool_env):
    script = ". ./path.sh; command -v python3; command -v python; echo $OMP_NUM_THREADS $PYTHONIOENCODING"
    result = subprocess.run(["bash", "-c", script], cwd=repo_root / "egs" / "TEMPLATE", env=tool_env,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    venv_bin = os.path.realpath(repo_root / "tools" / "venv" / "bin")
    python3, python, settings = result.stdout.splitlines()
    assert os.path.dirname(python3) == venv_bin and os.path.dirname(python) == venv_bin
    assert settings == "1 UTF-8"


def test_path_sh_without_install_says_what_to_do(repo_root, tmp_path):
    recipe = tmp_path / "egs" / "demo"
    recipe.mkdir(parents=True)
    (recipe / "path.sh").write_text((repo_root / "egs" / "TEMPLATE" / "path.sh").read_text())
    result = subprocess.run(["bash", "-c", "set -e; . ./path.sh; echo reached"], cwd=recipe, capture_output=True,
                            text=True, check=False)
    assert result.returncode != 0 and "reached" not in result.stdout
    assert "activate_python.sh not found" in result.stderr and "make install" in result.stderr


def test_step1_data_is_prepared_extracted_continued_and_trained_on(repo_root, tmp_path, fake):
    result = run_sh(repo_root, tmp_path, fake, "--corpus", "mini", "--step1_data", "mini_asr", "--stop_stage", "4",
                    "--models", "blsp_emo", "--blsp_emo_source", "trained")
    assert result.returncode == 0, result.stdout + result.stderr
    calls = fake[1].read_text().splitlines()
    prepare = [c for c in calls if "rellm.bin.prepare" in c]
    assert len(prepare) == 2 and "conf/prepare_step1.yaml --corpus mini_asr" in prepare[1]
    assert f"--save_folder {tmp_path}/data/mini_asr" in prepare[1]
    merges = [c for c in calls if "rellm.bin.extract" in c and "--merge true" in c]
    assert [re.search(r"--output_dir (\S+)", c).group(1) for c in merges] == [
        f"{tmp_path}/dump/{s}" for s in ("official/train", "official/valid", "official/test", "mini_asr/train",
                                         "mini_asr/valid")]
    respond = {re.search(r"--output_dir (\S+)", c).group(1).removeprefix(f"{tmp_path}/exp/responses/"):
               re.search(r"--tasks=\[(\w+)\]", c).group(1) for c in calls if "rellm.bin.respond" in c}
    assert respond == {"official/train": "expected", "official/valid": "expected", "official/test": "expected",
                       "mini_asr/train": "continuation", "mini_asr/valid": "continuation"}
    (train,) = [c for c in calls if "rellm.bin.train " in c]
    assert f"--step1_data_dir {tmp_path}/data/mini_asr --step1_feats_dir {tmp_path}/dump/mini_asr" in train
    assert f"--step1_responses_dir {tmp_path}/exp/responses/mini_asr" in train


def test_step1_prepare_and_emotion_encoder_args_reach_their_stages(repo_root, tmp_path, fake):
    """egs/mini/conf/fast.yaml shrinks the step-1 set and changes stage 2a through these two flags."""
    result = run_sh(repo_root, tmp_path, fake, "--corpus", "mini", "--step1_data", "mini_asr", "--stop_stage", "2",
                    "--train_emotion_encoder", "true", "--emotion_encoder_conf",
                    str(repo_root / "egs/mini/conf/emotion_encoder.yaml"), "--prepare_args", "--num_sentences=9",
                    "--step1_prepare_args", "--num_sentences=3", "--emotion_encoder_args", "--epochs=2", "--blsp_emo_source", "trained",
                    "--overwrite", "true")
    assert result.returncode == 0, result.stdout + result.stderr
    calls = fake[1].read_text().splitlines()
    prepare = [c for c in calls if "rellm.bin.prepare" in c]
    assert prepare[0].endswith("--num_sentences=9 --overwrite=true")
    assert "conf/prepare_step1.yaml" in prepare[1] and prepare[1].endswith("--num_sentences=3 --overwrite=true")
    (encoder,) = [c for c in calls if "rellm.bin.train_emotion_encoder" in c]
    assert encoder.endswith("--epochs=2 --overwrite=true")


def test_without_step1_data_step1_uses_the_ser_sets(repo_root, tmp_path, fake):
    result = run_sh(repo_root, tmp_path, fake, "--corpus", "mini", "--stage", "3", "--stop_stage", "4",
                    "--blsp_emo_source", "trained")
    assert result.returncode == 0, result.stdout + result.stderr
    calls = fake[1].read_text().splitlines()
    assert not any("mini_asr" in c or "--step1_data_dir" in c for c in calls)
    respond = [c for c in calls if "rellm.bin.respond" in c]
    # train/valid: both tasks (step 1 trains on the SER sets' continuations); the test set: expected only
    sets = {re.search(r"--output_dir \S+/responses/(\S+)", c).group(1): ("--tasks" in c) for c in respond}
    assert sets == {"official/train": False, "official/valid": False, "official/test": True}


def test_released_blsp_emo_needs_no_step1_data(repo_root, tmp_path, fake):
    """The released BLSP-Emo went through step 1 already: step1_data is neither prepared nor extracted."""
    result = run_sh(repo_root, tmp_path, fake, "--corpus", "mini", "--step1_data", "mini_asr", "--stop_stage", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no step-1 data needed" in result.stdout
    calls = fake[1].read_text().splitlines()
    assert not [c for c in calls if "mini_asr" in c]
    respond = [c for c in calls if "rellm.bin.respond" in c]
    assert respond and all("--tasks=[expected]" in c for c in respond)  # no continuations: step 1 does not run


# ------------------------------------------------------------------ what each stage gets on top of its config


def recipe_copy(repo_root, tmp_path, recipe="TEMPLATE", overlay=None):
    """egs/<recipe> in tmp (links to its files, conf/ a folder of links), so that relative outputs stay there;
    ``overlay``: the text of its conf/overlay.yaml instead of the recipe's."""
    source = repo_root / "egs" / recipe
    folder = tmp_path / recipe
    (folder / "conf").mkdir(parents=True)
    for item in source.iterdir():
        if item.name != "conf" and (item.is_symlink() or item.name.endswith(".sh")):
            (folder / item.name).symlink_to(item.resolve())
    for item in (source / "conf").iterdir():
        (folder / "conf" / item.name).symlink_to(item.resolve())
    if overlay is not None:
        (folder / "conf" / "overlay.yaml").unlink(missing_ok=True)
        (folder / "conf" / "overlay.yaml").write_text(overlay)
    return folder


def run_in(folder, fake, *args, **env):
    python, _, base_env = fake
    return subprocess.run(["./run.sh", "--python", str(python), "--nj", "1", "--gen_nj", "1", "--infer_nj", "1",
                           *args], cwd=folder, env={**base_env, **env}, capture_output=True, text=True, timeout=300,
                          check=False)


def test_the_recipe_overlay_comes_before_the_users_overrides(repo_root, tmp_path, fake):
    """ESD's conf/overlay.yaml sets avd_source: encoder in the (linked) template's train configs."""
    folder = recipe_copy(repo_root, tmp_path, "esd")
    result = run_in(folder, fake, "--stage", "4", "--stop_stage", "4", "--blsp_emo_source", "trained",
                    "--train_args", "--avd_source=annotation --lr=1")
    assert result.returncode == 0, result.stdout + result.stderr
    train = [c for c in fake[1].read_text().splitlines() if "rellm.bin.train " in c]
    assert len(train) == 3
    assert all(c.endswith("--avd_source=encoder --avd_source=annotation --lr=1") for c in train), train

    result = run_in(recipe_copy(repo_root, tmp_path / "t"), fake, "--stage", "4", "--stop_stage", "4",
                    "--blsp_emo_source", "trained")  # the template's overlay changes nothing
    assert result.returncode == 0, result.stderr
    assert not any("--avd_source" in c for c in fake[1].read_text().splitlines()[3:])


@pytest.mark.parametrize("overlay, message", [
    ("overrides: {train_rellm.yaml: {avd_sorce: encoder}}\n", "train_rellm.yaml has no key(s) avd_sorce"),
    ("overrides: {score.yaml: {notes: [a note]}}\n", "holds spaces"),
    ("overrides: {train_nothing.yaml: {lr: 1}}\n", "overrides of train_nothing.yaml, which conf does not have"),
    ("own: {nothing.yaml: [lr]}\n", "own: nothing.yaml, which conf does not have"),
])
def test_a_wrong_overlay_stops_before_any_stage(repo_root, tmp_path, fake, overlay, message):
    folder = recipe_copy(repo_root, tmp_path, overlay=overlay)
    result = run_in(folder, fake, "--stage", "4", "--blsp_emo_source", "trained")
    assert result.returncode == 1 and message in result.stderr, result.stderr
    assert result.stderr.count("ERROR") == 1 and "Traceback" not in result.stderr
    assert not fake[1].exists()


def test_dry_run_values_are_data_never_shell_code(repo_root, tmp_path, fake):
    """The dry run's settings come back as records assigned as values: what the user typed is never run."""
    folder = recipe_copy(repo_root, tmp_path)
    marker = tmp_path / "ran"
    result = run_in(folder, fake, "--corpus", "mini", "--dry_run", "true", "--stage", "2", "--stop_stage", "2",
                    "--extract_args", f"--batch_size=2 --x=$(touch {marker})`touch {marker}`;touch")
    assert result.returncode == 0, result.stdout + result.stderr
    assert not marker.exists()
    calls = fake[1].read_text().splitlines()
    extract = [c for c in calls if "rellm.bin.extract" in c]
    assert extract and all("--whisper=whisper-tiny.en" in c for c in extract)  # the dry run's swap ...
    assert all(c.endswith(f"--batch_size=4 --batch_size=2 --x=$(touch {marker})`touch {marker}`;touch")
               for c in extract)  # ... then the user's, last, as typed
    assert all("--output_dir dump_dry/official/" in c for c in extract)  # the dry run's own roots
    assert re.search(rf"^{TIMESTAMP} \(stages.sh:\d+\) Dry run: BLSP_EMO is not set", result.stdout, re.MULTILINE)


def help_flags(folder, env):
    """``{flag: default}`` of ``./run.sh --help``."""
    out = subprocess.run(["./run.sh", "--help"], cwd=folder, env=env, capture_output=True, text=True, check=True).stdout
    return dict(re.findall(r"^  --(\w+) +\[([^\]]*)\]", out, re.MULTILINE))


@pytest.mark.parametrize("source", ["trained", "released"])
def test_every_stage_args_flag_reaches_its_stage_in_a_dry_run_with_overwrite(repo_root, tmp_path, fake, source):
    """One list of --*_args flags behind the help, the dry run and --overwrite: each flag of the help reaches its
    stage after the dry run's swaps, and every stage call gets --overwrite=true once."""
    folder = recipe_copy(repo_root, tmp_path)
    flags = [f for f in help_flags(folder, fake[2]) if f.endswith("_args")]
    assert len(flags) == 13
    released = tmp_path / "blsp_emo"
    released.mkdir()
    marks = [a for f in flags for a in (f"--{f}", f"--mark_{f}=1")]
    result = run_in(folder, fake, "--corpus", "mini", "--dry_run", "true", "--blsp_emo_source", source,
                    "--overwrite", "true", "--step1_data", "mini_asr", *marks,
                    **({"BLSP_EMO": str(released)} if source == "released" else {}))
    assert result.returncode == 0, result.stdout + result.stderr
    calls = [c for c in fake[1].read_text().splitlines() if "rellm.bin.dry_run" not in c]
    stage_of = {"prepare_args": "conf/prepare.yaml", "step1_prepare_args": "conf/prepare_step1.yaml",
                "emotion_encoder_args": "rellm.bin.train_emotion_encoder", "extract_args": "rellm.bin.extract",
                "respond_args": "rellm.bin.respond", "train_args": "rellm.bin.train ", "infer_args": "rellm.bin.infer",
                "import_args": "rellm.bin.import_blsp_emo", "epitome_args": "rellm.bin.epitome",
                "score_args": "rellm.bin.score", "blsp_emo_args": "train_blsp_emo.yaml",
                "blsp_emo_ft_args": "train_blsp_emo_ft.yaml", "rellm_args": "train_rellm.yaml"}
    assert set(stage_of) == set(flags)
    # the dry run needs no step-1 data; the released BLSP-Emo is imported, so neither trains with its own flags
    unused = {"step1_prepare_args"} | ({"blsp_emo_args"} if source == "released" else {"import_args"})
    for flag in set(flags) - unused:
        reached = [c for c in calls if stage_of[flag] in c]
        assert reached and all(f"--mark_{flag}=1" in c for c in reached), flag
    for call in calls:
        if "rellm.bin.results" not in call:  # RESULTS.md is rewritten every time (and records the command)
            assert call.split().count("--overwrite=true") == 1, call
    train = [c for c in calls if "rellm.bin.train " in c]
    rellm = next(c for c in train if "train_rellm.yaml" in c).split()
    # --train_args (the dry run's, the user's, --overwrite=true), then RE-LLM's own (the dry run's, the user's)
    assert rellm.index("--speech_dim=auto") < rellm.index("--mark_train_args=1") \
        < rellm.index("--overwrite=true") < rellm.index("--emotion_dim=auto") < rellm.index("--mark_rellm_args=1")
