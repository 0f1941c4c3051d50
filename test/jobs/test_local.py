"""The local backend, run as users run it: tools/run.py in a subprocess."""
import itertools
import subprocess
import sys
import time

from rellm.jobs.task import read_exit_code

# prints its arguments one per line with their repr, then exits with the code in $EXIT_<task> (default 0)
ECHO_ARGS = (
    "import os, sys, time\n"
    "task = sys.argv[1]\n"
    "print('start', task, time.time(), flush=True)\n"
    "time.sleep(float(os.environ.get('SLEEP', '0')))\n"
    "for a in sys.argv[2:]: print('arg', repr(a))\n"
    "print('threads', os.environ.get('OMP_NUM_THREADS'))\n"
    "print('end', task, time.time(), flush=True)\n"
    "sys.exit(int(os.environ.get('EXIT_' + task, '0')))\n"
)
TRICKY = ["a b", "$(touch pwned)", "x;y|z&", "*", "'\"", "ünï", ""]


def run(repo_root, cwd, args, env=None):
    return subprocess.run([sys.executable, str(repo_root / "tools" / "run.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def write_script(tmp_path):
    script = tmp_path / "echo_args.py"
    script.write_text(ECHO_ARGS)
    return str(script)


def test_array_logs_have_command_output_and_exit(repo_root, tmp_path, tool_env):
    script = write_script(tmp_path)
    result = run(repo_root, tmp_path, ["JOB=1:3", "log dir/echo.JOB.log", sys.executable, script, "JOB", *TRICKY],
                 env=tool_env)
    assert result.returncode == 0, result.stderr
    assert "log dir/echo.1.log log dir/echo.2.log log dir/echo.3.log" in result.stdout
    for j in (1, 2, 3):
        lines = (tmp_path / "log dir" / f"echo.{j}.log").read_text().splitlines()
        assert lines[0].startswith("# ") and f"{script} {j} 'a b'" in lines[0]
        assert lines[1].startswith("# Started at ")
        assert [line for line in lines if line.startswith("arg ")] == [f"arg {a!r}" for a in TRICKY]
        assert lines[-1].startswith("# Ended (code 0) at ") and "elapsed time" in lines[-1]
    assert not (tmp_path / "pwned").exists()  # nothing went through a shell


def test_failing_task_names_log_shows_tail_and_pick_failed_reruns_only_it(repo_root, tmp_path, tool_env):
    script = write_script(tmp_path)
    args = ["JOB=1:3", "logs/t.JOB.log", sys.executable, script, "JOB"]
    result = run(repo_root, tmp_path, args, env=dict(tool_env, EXIT_2="3"))
    assert result.returncode == 1
    assert "1 of 3 job(s) failed: logs/t.2.log (exit code 3)" in result.stderr
    assert "last lines of logs/t.2.log" in result.stderr and "# Ended (code 3)" in result.stderr
    assert [read_exit_code(tmp_path / f"logs/t.{j}.log") for j in (1, 2, 3)] == [0, 3, 0]

    first_log = (tmp_path / "logs/t.1.log").read_text()
    (tmp_path / "logs/t.3.log").unlink()  # a missing log counts as not done
    result = run(repo_root, tmp_path, ["--pick", "failed", *args], env=tool_env)
    assert result.returncode == 0, result.stderr
    assert "running 2 job(s)" in result.stdout and "logs/t.2.log logs/t.3.log" in result.stdout
    assert (tmp_path / "logs/t.1.log").read_text() == first_log
    assert [read_exit_code(tmp_path / f"logs/t.{j}.log") for j in (1, 2, 3)] == [0, 0, 0]

    result = run(repo_root, tmp_path, ["--pick", "failed", *args], env=tool_env)
    assert result.returncode == 0 and "nothing to run" in result.stdout


def test_single_job_propagates_exit_code(repo_root, tmp_path, tool_env):
    script = write_script(tmp_path)
    result = run(repo_root, tmp_path, ["one.log", sys.executable, script, "7", "JOB"], env=dict(tool_env, EXIT_7="4"))
    assert result.returncode == 4
    log = (tmp_path / "one.log").read_text()
    assert "arg 'JOB'" in log  # without JOB=, JOB is an ordinary argument
    assert log.splitlines()[-1].startswith("# Ended (code 4)")


def test_missing_program_is_a_logged_failure(repo_root, tmp_path, tool_env):
    result = run(repo_root, tmp_path, ["x.log", "no-such-program-rellm"], env=tool_env)
    assert result.returncode == 127
    assert "cannot start 'no-such-program-rellm'" in (tmp_path / "x.log").read_text()


def _intervals(tmp_path, n):
    spans = []
    for j in range(1, n + 1):
        words = dict(line.split()[0::2] for line in (tmp_path / f"p.{j}.log").read_text().splitlines()
                     if line.startswith(("start ", "end ")))
        spans.append((float(words["start"]), float(words["end"])))
    return sorted(spans)


def test_max_jobs_run_limits_concurrency_and_num_threads_reaches_tasks(repo_root, tmp_path, tool_env):
    script = write_script(tmp_path)
    env = dict(tool_env, SLEEP="0.4")
    start = time.monotonic()
    result = run(repo_root, tmp_path, ["--max_jobs_run", "1", "--num_threads", "3", "JOB=1:3", "p.JOB.log",
                                       sys.executable, script, "JOB"], env=env)
    assert result.returncode == 0, result.stderr
    spans = _intervals(tmp_path, 3)
    assert all(prev_end <= next_start for (_, prev_end), (next_start, _) in itertools.pairwise(spans))
    assert time.monotonic() - start >= 1.2
    assert "threads 3" in (tmp_path / "p.1.log").read_text()

    result = run(repo_root, tmp_path, ["--max_jobs_run", "3", "JOB=1:3", "p.JOB.log", sys.executable, script, "JOB"],
                 env=dict(tool_env, SLEEP="1.0"))
    spans = _intervals(tmp_path, 3)
    assert max(s for s, _ in spans) < min(e for _, e in spans)  # all three overlapped


def test_usage_errors_exit_2_with_message(repo_root, tmp_path, tool_env):
    result = run(repo_root, tmp_path, ["--gpus", "1", "x.log", "true"], env=tool_env)
    assert result.returncode == 2 and "unknown option --gpus" in result.stderr
    result = run(repo_root, tmp_path, ["--help"], env=tool_env)
    assert result.returncode == 0 and "--max_jobs_run" in result.stdout


def test_task_killed_by_signal_records_128_plus_signal(repo_root, tmp_path, tool_env):
    result = run(repo_root, tmp_path, ["JOB=1:1", "k.JOB.log", "bash", "-c", "kill -9 $$"], env=tool_env)
    assert result.returncode == 1
    assert "k.1.log (exit code 137)" in result.stderr
    assert read_exit_code(tmp_path / "k.1.log") == 137


def test_read_exit_code_of_unfinished_or_missing_log(tmp_path):
    log = tmp_path / "x.log"
    assert read_exit_code(log) is None
    log.write_text("# true\n# Started at 2026-01-01 00:00:00 on host\nstill running\n")
    assert read_exit_code(log) is None
    log.write_text(log.read_text() + "# Ended (code 0) at 2026-01-01 00:00:01, elapsed time 1.0s\n")
    assert read_exit_code(log) == 0


def test_module_entry_point_picks_the_backend(tmp_path, tool_env):
    result = subprocess.run([sys.executable, "-m", "rellm.jobs", "local", "m.log", "echo", "via module"], cwd=tmp_path,
                            env=tool_env, capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "via module" in (tmp_path / "m.log").read_text()
    result = subprocess.run([sys.executable, "-m", "rellm.jobs", "pbs", "m.log", "true"], cwd=tmp_path, env=tool_env,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 2 and "local|slurm" in result.stderr


def test_gpu_tasks_get_their_own_gpus(repo_root, tmp_path, tool_env):
    script = tmp_path / "gpu.py"
    script.write_text("import os, sys, time\n"
                      "print('start', time.time(), flush=True)\n"
                      "time.sleep(0.5)\n"
                      "print('gpus', os.environ.get('CUDA_VISIBLE_DEVICES'))\n"
                      "print('end', time.time(), flush=True)\n")
    env = dict(tool_env, CUDA_VISIBLE_DEVICES="3,5")
    result = run(repo_root, tmp_path, ["--gpu", "1", "JOB=1:4", "p.JOB.log", sys.executable, str(script)], env=env)
    assert result.returncode == 0, result.stderr
    assert "2 at once, GPUs 3 5" in result.stdout
    spans, used = [], []
    for j in range(1, 5):
        lines = dict(line.split(" ", 1) for line in (tmp_path / f"p.{j}.log").read_text().splitlines()
                     if line.startswith(("start ", "end ", "gpus ")))
        spans.append((float(lines["start"]), float(lines["end"]), lines["gpus"]))
        used.append(lines["gpus"])
    assert set(used) == {"3", "5"}
    for a, b in itertools.combinations(spans, 2):
        if a[0] < b[1] and b[0] < a[1]:  # ran at the same time: never on the same GPU
            assert a[2] != b[2]

    result = run(repo_root, tmp_path, ["--gpu", "2", "JOB=1:2", "p.JOB.log", sys.executable, str(script)], env=env)
    assert "1 at once, GPUs 3,5" in result.stdout
    assert "gpus 3,5" in (tmp_path / "p.2.log").read_text()

    result = run(repo_root, tmp_path, ["--gpu", "1", "q.log", sys.executable, str(script)],
                 env=dict(tool_env, CUDA_VISIBLE_DEVICES=""))
    assert result.returncode == 0 and "no GPU is visible" in result.stderr
