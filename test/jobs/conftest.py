"""A real one-node Slurm cluster for the Slurm backend tests (session-scoped).

The fixture installs slurmctld, slurmd and munge with tools/install_slurm.sh when missing (apt-get,
as root), then starts a private munged, slurmctld and slurmd whose config, key, sockets, state and
logs all live in one folder under the temp dir, on free ports, so nothing of the system's own Slurm
or munge setup is touched. A cluster left running by an earlier session of the same user is reused.
Tests reach it through ``SLURM_CONF`` (see ``slurm_cluster.env``). Skipped, with the reason, only
where Slurm cannot be installed.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SBIN = ("/usr/sbin", "/usr/local/sbin", "/sbin")


def _find(program):
    found = shutil.which(program)
    if found:
        return found
    for folder in SBIN:
        if os.access(Path(folder) / program, os.X_OK):
            return str(Path(folder) / program)
    return None


def _free_port():
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _alive(pid_file):
    try:
        pid = int(Path(pid_file).read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


class LocalSlurmCluster:
    DAEMONS = ("slurmd", "slurmctld", "munged")  # stop order

    def __init__(self, folder):
        self.folder = Path(folder)
        self.conf = self.folder / "slurm.conf"
        self.host = socket.gethostname().split(".")[0]
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))
        self.started_here = False

    def pid_file(self, daemon):
        return self.folder / f"{daemon}.pid"

    def answers(self):
        if not self.conf.is_file():
            return False
        result = subprocess.run([_find("scontrol"), "ping"], env=self.env, capture_output=True, text=True, check=False)
        return result.returncode == 0 and "UP" in result.stdout

    def write_config(self):
        munge_dir = self.folder / "munge"
        for sub in ("state", "spool", "munge"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o755)
        os.chmod(munge_dir, 0o755)  # clients must reach the socket
        key = munge_dir / "munge.key"
        if not key.exists():
            key.write_bytes(os.urandom(128))
        os.chmod(key, 0o400)
        memory_mb = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20 * 0.9)
        user = os.environ.get("USER") or "root"
        self.conf.write_text(
            f"""# one-node test cluster written by test/jobs/conftest.py
ClusterName=rellmtest
SlurmctldHost={self.host}
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser={user}
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_dir}/munge.sock
StateSaveLocation={self.folder}/state
SlurmdSpoolDir={self.folder}/spool
SlurmctldPidFile={self.pid_file('slurmctld')}
SlurmdPidFile={self.pid_file('slurmd')}
SlurmctldLogFile={self.folder}/slurmctld.log
SlurmdLogFile={self.folder}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
MinJobAge=30
NodeName={self.host} CPUs=2 RealMemory={memory_mb} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""
        )

    def start(self):
        self.stop()  # stale daemons of ours from a crashed session, found by their pid files
        for sub in ("state", "spool"):
            shutil.rmtree(self.folder / sub, ignore_errors=True)
        self.write_config()
        munge_dir = self.folder / "munge"
        commands = {
            "munged": [_find("munged"), "--force", f"--socket={munge_dir}/munge.sock",
                       f"--key-file={munge_dir}/munge.key", f"--pid-file={self.pid_file('munged')}",
                       f"--log-file={self.folder}/munged.log", f"--seed-file={munge_dir}/munged.seed"],
            "slurmctld": [_find("slurmctld"), "-f", str(self.conf)],
            "slurmd": [_find("slurmd"), "-f", str(self.conf)],
        }
        for daemon in reversed(self.DAEMONS):
            result = subprocess.run(commands[daemon], env=self.env, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                self.fail(f"{daemon} did not start: {result.stderr.strip()}")
        self.started_here = True
        self.wait_idle()

    def wait_idle(self, timeout=60):
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            result = subprocess.run([_find("sinfo"), "-h", "-o", "%t"], env=self.env, capture_output=True, text=True, check=False)
            state = result.stdout.strip()
            if state == "idle":
                return
            time.sleep(0.3)
        self.fail(f"node not idle after {timeout}s (sinfo state {state!r})")

    def fail(self, message):
        logs = []
        for name in ("slurmctld.log", "slurmd.log", "munged.log"):
            path = self.folder / name
            if path.is_file():
                logs.append(f"--- {path}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-15:]))
        self.stop()
        pytest.fail(f"local Slurm cluster: {message}\n" + "\n".join(logs), pytrace=False)

    def stop(self):
        for daemon in self.DAEMONS:
            pid = _alive(self.pid_file(daemon))
            if pid:
                os.kill(pid, signal.SIGTERM)
                for _ in range(50):
                    if not _alive(self.pid_file(daemon)):
                        break
                    time.sleep(0.1)


@pytest.fixture(scope="session")
def slurm_cluster():
    if not all(_find(p) for p in ("slurmctld", "slurmd", "sbatch", "munged")):
        result = subprocess.run([str(REPO_ROOT / "tools" / "install_slurm.sh")], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            pytest.skip(f"Slurm cannot be installed here: {result.stderr.strip()}")
    if os.geteuid() != 0:
        pytest.skip("the local test cluster runs slurmd, which needs root")
    cluster = LocalSlurmCluster(Path(tempfile.gettempdir()) / f"rellm-slurm-test-{os.getuid()}")
    if not cluster.answers():
        cluster.start()
    else:
        cluster.wait_idle()
    yield cluster
    if cluster.started_here:
        cluster.stop()
