"""The Slurm backend shows the same progress line, read from the tasks' logs as Slurm runs them."""
import re
import shutil
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

TQDM_TASK = (
    "import sys, time\n"
    "from tqdm import tqdm\n"
    "for _ in tqdm(range(int(sys.argv[2])), desc=f'shard {sys.argv[1]}', unit='utt', mininterval=0):\n"
    "    time.sleep(float(sys.argv[3]))\n"
)


def test_slurm_runner_prints_the_tasks_progress(slurm_cluster, repo_root, tmp_path):
    (tmp_path / "conf").mkdir()
    shutil.copy(repo_root / "egs" / "TEMPLATE" / "conf" / "slurm.conf", tmp_path / "conf" / "slurm.conf")
    (tmp_path / "conf" / "slurm.local.conf").write_text("default mem=0\n")
    (tmp_path / "task.py").write_text(TQDM_TASK)
    env = dict(slurm_cluster.env, RELLM_PROGRESS_INTERVAL="0.5")
    result = subprocess.run([sys.executable, str(repo_root / "tools" / "slurm.py"), "--poll_interval", "0.5",
                             "JOB=1:2", "exp/log/t.JOB.log", sys.executable, "task.py", "JOB", "10", "0.3"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("t exp: ")]
    counts = [tuple(map(int, m.groups())) for m in (re.search(r"\| (\d+)/(\d+) utt \|", line) for line in lines) if m]
    assert lines[-1].startswith("t exp: 2/2 jobs done | 20/20 utt | elapsed "), result.stdout
    assert any(n < total for n, total in counts), result.stdout  # seen while the tasks ran
    assert all(n <= total <= 20 for n, total in counts)
