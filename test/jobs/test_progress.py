"""The runner's console progress line, read from real tasks' logs (tqdm bars, stage 4's progress markers)."""
import os
import pty
import re
import subprocess
import sys
import time

from rellm.jobs.progress import ArrayProgress, TaskLog, finish_times, format_duration, parse_bar
from rellm.jobs.spec import parse_job_args

# a shard job as stages 2, 3 and 5 run them: a real tqdm bar over its utterances, on stderr (into the log)
TQDM_TASK = (
    "import sys, time\n"
    "from tqdm import tqdm\n"
    "task, n, pause = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])\n"
    "for _ in tqdm(range(n), desc=f'shard {task}', unit='utt', mininterval=0):\n"
    "    time.sleep(pause)\n"
)
LINE = re.compile(r"^t(?: (?P<folder>\S+))?: (?P<done>\d+)/(?P<jobs>\d+) jobs done(?:, (?P<running>\d+) running)?"
                  r"(?: \| (?P<n>\d+)/(?P<total>\d+) utt)? \| elapsed \d+:\d\d(?:, ETA (?P<eta>\d+:\d\d))?$")


def runner(repo_root, cwd, env, args, **kwargs):
    return subprocess.run([sys.executable, str(repo_root / "tools" / "run.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False, **kwargs)


def test_local_runner_prints_a_progress_line_with_the_tasks_counts(repo_root, tmp_path, tool_env):
    (tmp_path / "task.py").write_text(TQDM_TASK)
    env = dict(tool_env, RELLM_PROGRESS_INTERVAL="0.3")
    result = runner(repo_root, tmp_path, env, ["--max_jobs_run", "2", "JOB=1:3", "exp/log/t.JOB.log",
                                               sys.executable, "task.py", "JOB", "12", "0.15"])
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if not line.startswith("# ")]
    parsed = [LINE.match(line) for line in lines]
    assert lines and all(parsed), lines  # nothing else on stdout: the tasks' own bars stay in their logs
    assert all(m.group("folder") == "exp" and m.group("jobs") == "3" for m in parsed)
    # the last line: every job done, every utterance of the three bars counted once
    assert parsed[-1].group("done") == "3" and (parsed[-1].group("n"), parsed[-1].group("total")) == ("36", "36")
    done = [int(m.group("done")) for m in parsed]
    assert done == sorted(done)
    counted = [(int(m.group("n")), int(m.group("total"))) for m in parsed if m.group("n")]
    assert any(0 < n < total for n, total in counted), lines  # seen while the tasks ran
    assert all(n <= total <= 36 and total % 12 == 0 for n, total in counted)
    assert all(int(m.group("running") or 0) <= 2 for m in parsed)  # --max_jobs_run 2
    assert any(m.group("eta") for m in parsed[:-1]), lines
    for j in (1, 2, 3):  # the detail stays in the logs
        assert f"shard {j}: 100%" in (tmp_path / f"exp/log/t.{j}.log").read_text()


def test_on_a_terminal_the_line_is_rewritten_in_place(repo_root, tmp_path, tool_env):
    (tmp_path / "task.py").write_text(TQDM_TASK)
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, str(repo_root / "tools" / "run.py"), "JOB=1:2", "log/t.JOB.log",
                             sys.executable, "task.py", "JOB", "10", "0.3"], cwd=tmp_path, env=tool_env,
                            stdout=slave, stderr=slave)
    os.close(slave)
    output = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the runner closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(master)
    assert proc.wait(timeout=60) == 0
    text = output.decode()
    progress = text[text.index("\n", text.index("# running")) + 1:]  # after the runner's "# running" line
    assert progress.count("\n") == 1 and progress.endswith("\x1b[K\r\n")  # one line, closed at the end (the
    updates = progress[:-2].split("\r")[1:]                                # terminal writes \n as \r\n)
    assert len(updates) >= 2, text  # one line a second, each written over the previous one
    assert all(u.endswith("\x1b[K") for u in updates)
    assert "2/2 jobs done | 20/20 utt" in updates[-1]


def test_a_short_job_adds_no_line_and_zero_turns_it_off(repo_root, tmp_path, tool_env):
    (tmp_path / "task.py").write_text(TQDM_TASK)
    result = runner(repo_root, tmp_path, tool_env, ["JOB=1:2", "log/t.JOB.log", sys.executable, "task.py", "JOB",
                                                    "3", "0"])
    assert result.returncode == 0 and result.stdout.splitlines()[1:] == [], result.stdout  # default: every 60 s
    env = dict(tool_env, RELLM_PROGRESS_INTERVAL="0")
    result = runner(repo_root, tmp_path, env, ["JOB=1:2", "log/t.JOB.log", sys.executable, "task.py", "JOB",
                                               "4", "0.3"])
    assert result.returncode == 0 and result.stdout.splitlines()[1:] == [], result.stdout


def test_an_earlier_runs_log_is_not_read_as_this_runs(repo_root, tmp_path, tool_env):
    (tmp_path / "task.py").write_text(TQDM_TASK)
    env = dict(tool_env, RELLM_PROGRESS_INTERVAL="0.3")
    args = ["--max_jobs_run", "1", "JOB=1:2", "log/t.JOB.log", sys.executable, "task.py", "JOB", "6", "0.15"]
    assert runner(repo_root, tmp_path, env, args).returncode == 0
    result = runner(repo_root, tmp_path, env, args)  # both logs end with "code 0" before the second run
    first = LINE.match(result.stdout.splitlines()[1])
    assert first and first.group("done") == "0", result.stdout


def _stage4_log(path, lines):
    path.write_text("".join(lines))


def test_stage4_markers_give_the_phase_and_an_estimate_for_all_its_epochs(tmp_path):
    """Stage 4's log: a "progress:" line per epoch (rellm.training.brain) and SpeechBrain's tqdm bar."""
    log = tmp_path / "train.log"
    start = "2026-01-05 10:00:00"
    lines = ["# python -m rellm.bin.train conf/train_blsp_emo.yaml\n", f"# Started at {start} on node (x)\n",
             "2026-01-05 10:00:05 INFO rellm.training.brain: progress: step 1/2 (step1_semantic), epoch 1/4, training\n",
             "\r 30%|###       | 3/10 [00:06<00:14,  2.00s/it, train_loss=2.1]"]
    _stage4_log(log, lines)
    spec = parse_job_args([str(log), "python", "-m", "rellm.bin.train"])
    progress = ArrayProgress(spec, [1], slots=1, tracked=False)
    t0 = time.mktime(time.strptime("2026-01-05 10:00:11", "%Y-%m-%d %H:%M:%S"))
    progress.read(now=t0)
    task = progress.logs[1]
    assert task.bar.n == 3 and task.bar.total == 10 and task.bar.unit == "it" and task.bar.left == 14
    # the first epoch: its time so far (6 s) plus its bar's 14 s left, for each of the 3 epochs still to come
    assert task.remaining(t0) == 14 + 3 * 20
    line = progress.line(now=t0)
    assert "0/1 jobs done, 1 running | step 1/2 (step1_semantic), epoch 1/4, training: 3/10 it" in line
    assert line.endswith("step 1/2 ends in ~1:14")

    # two epochs later: the measured epoch length (30 s) replaces the bar's estimate
    more = ["\n2026-01-05 10:00:35 INFO rellm.training.brain: progress: step 1/2 (step1_semantic), epoch 2/4, training\n",
            "2026-01-05 10:01:05 INFO rellm.training.brain: progress: step 1/2 (step1_semantic), epoch 3/4, training\n",
            "\r 50%|#####     | 5/10 [00:10<00:10,  2.00s/it, train_loss=1.9]"]
    with open(log, "a") as f:
        f.write("".join(more))
    t1 = t0 + 65  # 10:01:16, 11 s into epoch 3
    progress.read(now=t1)
    assert task.remaining(t1) == (30 - 11) + 1 * 30
    # step 2, the last: the estimate is the task's, called ETA
    with open(log, "a") as f:
        f.write("\n2026-01-05 10:03:00 INFO rellm.training.brain: progress: step 2/2 (step2_behaviour), epoch 1/2, "
                "training\n\r 10%|#         | 1/10 [00:02<00:18,  2.00s/it]")
    t2 = t1 + 110
    progress.read(now=t2)
    assert task.epoch_starts == {1: time.mktime(time.strptime("2026-01-05 10:03:00", "%Y-%m-%d %H:%M:%S"))}
    # 6 s into this epoch with 18 s left in its bar, one more epoch of the same length after it
    assert progress.line(now=t2).endswith(f"ETA {format_duration(18 + (6 + 18))}")
    with open(log, "a") as f:
        f.write("\n# Ended (code 0) at 2026-01-05 10:05:00, elapsed time 300.0s\n")
    progress.read(now=t2 + 1)
    assert "1/1 jobs done" in progress.line(now=t2 + 1) and "ETA" not in progress.line(now=t2 + 1)


def test_a_new_phase_marker_drops_the_finished_bar_of_the_phase_before(tmp_path):
    """Stage 6's EPITOME training: a model-loading bar, then a phase whose worker processes draw no bar. The line
    names the phase, without the loading bar's count or an ETA of 0:00."""
    log = tmp_path / "epitome_train.log"
    _stage4_log(log, ["# python -m rellm.bin.epitome train\n", "# Started at 2026-01-05 10:00:00 on node (x)\n",
                      "Loading weights: 100%|##########| 103/103 [00:00<00:00, 10449.74it/s]\n",
                      ("2026-01-05 10:00:05 INFO rellm.scoring.epitome.training: progress: training the EPITOME "
                       "classifiers ER+IP and EX in 2 processes of 1 thread(s) each\n")])
    spec = parse_job_args([str(log), "python", "-m", "rellm.bin.epitome"])
    progress = ArrayProgress(spec, [1], slots=1, tracked=False)
    now = time.mktime(time.strptime("2026-01-05 10:05:00", "%Y-%m-%d %H:%M:%S"))
    progress.read(now=now)
    line = progress.line(now=now)
    assert progress.logs[1].bar is None
    assert "1 running | training the EPITOME classifiers ER+IP and EX in 2 processes of 1 thread(s) each | " in line
    assert "103/103" not in line and "ETA" not in line


def test_bar_parsing_and_the_schedule_of_pending_jobs():
    bar = parse_bar("extract shard 1/2:  40%|####      | 2/5 [01:02:03<00:07, 85.31utt/s]", now=0.0)
    assert (bar.desc, bar.n, bar.total, bar.unit, bar.elapsed, bar.left) == ("extract shard 1/2", 2, 5, "utt",
                                                                             3723.0, 7.0)
    assert parse_bar("  0%|          | 0/3 [00:00<?, ?it/s]", now=0.0).left is None
    assert parse_bar("Going into epoch 2", now=0.0) is None
    # two slots: running tasks end in 10 and 30 s; two pending ones of 20 s start at 10 and 30 -> last ends at 50
    assert finish_times([10.0, 30.0], pending=2, slots=2, per_task=20.0) == 50.0
    assert finish_times([], pending=3, slots=2, per_task=10.0) == 20.0
    emotion_encoder = TaskLog(path=None)
    emotion_encoder._line("epoch 3/16:  50%|#####     | 5/10 [00:05<00:05,  1.00batch/s]", now=100.0)
    assert emotion_encoder.epochs() == (3, 16) and emotion_encoder.remaining(100.0) == 5 + 13 * 10
