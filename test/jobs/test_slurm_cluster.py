"""The Slurm backend against a real one-node cluster (see conftest.py): tools/slurm.py as recipes call it."""
import shutil
import subprocess
import sys

import pytest

from rellm.jobs.task import read_exit_code

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

# exits 3 while the file named by its second argument exists; prints its arguments and Slurm's view
TASK = (
    "import os, sys\n"
    "task, fail_flag = sys.argv[1], sys.argv[2]\n"
    "print('task', task, 'args', sys.argv[3:])\n"
    "print('cpus', os.environ.get('SLURM_CPUS_PER_TASK'), 'omp', os.environ.get('OMP_NUM_THREADS'))\n"
    "if os.path.exists(fail_flag):\n"
    "    print(f'task {task} failing on purpose'); sys.exit(3)\n"
)


@pytest.fixture
def recipe_dir(tmp_path, repo_root):
    """A recipe-like folder: the template's conf/slurm.conf plus a local override (memory is not tracked here)."""
    (tmp_path / "conf").mkdir()
    shutil.copy(repo_root / "egs" / "TEMPLATE" / "conf" / "slurm.conf", tmp_path / "conf" / "slurm.conf")
    (tmp_path / "conf" / "slurm.local.conf").write_text("default mem=0\n")
    (tmp_path / "task.py").write_text(TASK)
    return tmp_path


def slurm_runner(repo_root, cwd, env, args):
    command = [sys.executable, str(repo_root / "tools" / "slurm.py"), "--poll_interval", "0.5", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_array_job_failure_and_pick_failed(slurm_cluster, recipe_dir, repo_root):
    fail_flag = recipe_dir / "fail.JOB"
    (recipe_dir / "fail.2").touch()  # only task 2 fails
    args = ["--num_threads", "2", "JOB=1:3", "exp/log/task.JOB.log", sys.executable, "task.py", "JOB",
            str(fail_flag), "a b", "$HOME;|*"]
    result = slurm_runner(repo_root, recipe_dir, slurm_cluster.env, args)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "submitted Slurm job" in result.stdout and "(3 task(s), array 1-3)" in result.stdout
    assert "1 of 3 job(s) failed: exp/log/task.2.log (exit code 3)" in result.stderr
    assert "task 2 failing on purpose" in result.stderr  # the tail of the failing log
    logs = {j: (recipe_dir / f"exp/log/task.{j}.log").read_text() for j in (1, 2, 3)}
    for j, text in logs.items():
        lines = text.splitlines()
        assert lines[0] == f"# {sys.executable} task.py {j} {recipe_dir}/fail.{j} 'a b' '$HOME;|*'"
        assert f"task {j} of JOB=1:3, Slurm job" in lines[1]
        assert f"task {j} args ['a b', '$HOME;|*']" in text  # unchanged: no shell saw them
        assert "cpus 2 omp 2" in text  # --num_threads 2 -> --cpus-per-task=2 via conf/slurm.conf
    assert [read_exit_code(recipe_dir / f"exp/log/task.{j}.log") for j in (1, 2, 3)] == [0, 3, 0]

    (recipe_dir / "fail.2").unlink()
    result = slurm_runner(repo_root, recipe_dir, slurm_cluster.env, ["--pick", "failed", *args])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(1 task(s), array 2)" in result.stdout
    assert (recipe_dir / "exp/log/task.1.log").read_text() == logs[1]  # untouched
    assert (recipe_dir / "exp/log/task.3.log").read_text() == logs[3]
    assert read_exit_code(recipe_dir / "exp/log/task.2.log") == 0

    result = slurm_runner(repo_root, recipe_dir, slurm_cluster.env, ["--pick", "failed", *args])
    assert result.returncode == 0 and "nothing to submit" in result.stdout


def test_task_killed_before_its_end_is_reported(slurm_cluster, recipe_dir, repo_root):
    # kill -9 of the task wrapper (the command's parent) leaves a log without an exit code,
    # as a node failure or an out-of-memory kill would
    args = ["JOB=1:2", "exp/log/kill.JOB.log", "bash", "-c", 'if [ "$1" = 2 ]; then kill -9 $PPID; fi; echo ok', "_",
            "JOB"]
    result = slurm_runner(repo_root, recipe_dir, slurm_cluster.env, args)
    assert result.returncode == 1
    assert "exp/log/kill.2.log (no exit code: never finished)" in result.stderr
    assert read_exit_code(recipe_dir / "exp/log/kill.1.log") == 0


def test_single_job_and_submission_errors(slurm_cluster, recipe_dir, repo_root):
    result = slurm_runner(repo_root, recipe_dir, slurm_cluster.env, ["exp/one.log", "echo", "JOB"])
    assert result.returncode == 0, result.stderr
    assert "\nJOB\n" in (recipe_dir / "exp/one.log").read_text()

    # a partition that does not exist: sbatch refuses, and the runner says so
    result = slurm_runner(repo_root, recipe_dir, slurm_cluster.env, ["--partition", "nowhere", "exp/two.log", "true"])
    assert result.returncode == 1
    assert "submission failed" in result.stderr and "--partition=nowhere" in result.stderr


FAKE_PYTHON = """#!/usr/bin/env bash
printf '%s\\n' "$*" >> "${FAKE_PYTHON_RECORD}"
echo "on node: SLURM_ARRAY_TASK_ID=${SLURM_ARRAY_TASK_ID:-none}"
"""


def test_run_sh_stage_through_slurm_backend(slurm_cluster, repo_root, tmp_path):
    """egs/TEMPLATE/run.sh with RELLM_CMD_BACKEND=slurm: stage 2's array jobs run as Slurm tasks."""
    python = tmp_path / "fake_python"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    template = repo_root / "egs" / "TEMPLATE"
    env = dict(slurm_cluster.env, RELLM_CMD_BACKEND="slurm", RELLM_SLURM_POLL_INTERVAL="0.5",
               FAKE_PYTHON_RECORD=str(tmp_path / "calls.txt"))
    result = subprocess.run(
        ["./run.sh", "--python", str(python), "--stage", "2", "--stop_stage", "2", "--nj", "2", "--ngpu", "0",
         "--test_sets", "", "--valid_set", "", "--dumpdir", str(tmp_path / "dump")],
        cwd=template, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "submitted Slurm job" in result.stdout and "Successfully finished" in result.stdout
    for j in (1, 2):
        log = (tmp_path / f"dump/official/train/log/extract.{j}.log").read_text()
        assert f"on node: SLURM_ARRAY_TASK_ID={j}" in log and read_exit_code(tmp_path / f"dump/official/train/log/extract.{j}.log") == 0
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    assert sum("--shard" in c for c in calls) == 2 and sum("--merge true" in c for c in calls) == 1
