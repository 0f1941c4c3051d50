"""Slurm backend: one array job through ``sbatch``, waited for, every task's exit status checked.

Site options live in ``conf/slurm.conf`` (committed, generic) and ``conf/slurm.local.conf``
(ignored by git: partitions, accounts, constraints). Both use one line format::

    command sbatch --export=ALL          # the submit command and options always passed
    default time=24:00:00                # value used when the runner is not given --time
    option time=* --time=$0              # any value: $0 is replaced by it
    option gpu=0                         # this exact value: no sbatch option at all
    option gpu=* --gres=gpu:$0

A line of the local file replaces the line of the same kind and key (and value, for ``option``).

Each task runs ``python -m rellm.jobs.task SPEC.json $SLURM_ARRAY_TASK_ID``: the command is read
from the JSON spec, so no shell ever sees its arguments. The task's log ends with its exit code;
a task whose log has none never finished, and the tail of Slurm's own output file for it
(``<logdir>/slurm/<name>.<jobid>_<task>.out``) is shown. While the job runs, the console shows one progress
line read from the tasks' logs (``rellm.jobs.progress``).
"""
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from rellm.jobs.outcome import TAIL_LINES, failed_tasks, report_failures, tasks_to_run
from rellm.jobs.progress import ArrayProgress, ProgressLine
from rellm.jobs.spec import RESOURCE_OPTIONS, UsageError
from rellm.jobs.task import refuse_logs_in_use, tail

_REPO_ROOT = Path(__file__).resolve().parents[2]


class SlurmConfig:
    """Generic resource options -> sbatch options, read from ``conf/slurm.conf`` + its local override."""

    def __init__(self, command=None, defaults=None, options=None, sources=()):
        self.command = command or ["sbatch"]
        self.defaults = dict(defaults or {})
        self.options = dict(options or {})  # (name, value or "*") -> [sbatch args with $0]
        self.sources = list(sources)

    @classmethod
    def load(cls, path):
        """Read ``path`` then, when present, ``<dir>/<stem>.local.conf`` beside it."""
        path = Path(path)
        if not path.is_file():
            raise UsageError(f"Slurm config {path} not found (run from the recipe folder, or pass --config FILE)")
        config = cls()
        config.read(path)
        local = path.with_name(f"{path.stem}.local{path.suffix}")
        if local.is_file():
            config.read(local)
        return config

    def read(self, path):
        for lineno, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            where = f"{path}:{lineno}"
            try:
                words = shlex.split(raw, comments=True)
            except ValueError as err:
                raise UsageError(f"{where}: {err}") from None
            if not words:
                continue
            kind = words[0]
            if kind == "command":
                if len(words) < 2:
                    raise UsageError(f"{where}: 'command' needs the submit program, e.g. 'command sbatch'")
                self.command = words[1:]
                continue
            if kind not in ("default", "option") or len(words) < 2 or "=" not in words[1]:
                raise UsageError(f"{where}: expected 'command ...', 'default NAME=VALUE' or "
                                 f"'option NAME=VALUE|* sbatch-options...', got {raw.strip()!r}")
            name, value = words[1].split("=", 1)
            if name not in RESOURCE_OPTIONS:
                raise UsageError(f"{where}: unknown option name {name!r}; known: {', '.join(RESOURCE_OPTIONS)}")
            if kind == "default":
                if len(words) != 2:
                    raise UsageError(f"{where}: 'default {words[1]}' takes no further words")
                self.defaults[name] = value
            else:
                self.options[(name, value)] = words[2:]
        self.sources.append(str(path))

    def sbatch_options(self, resources):
        """The sbatch options for the runner's generic ``resources`` (defaults filled in)."""
        args = []
        for name in RESOURCE_OPTIONS:
            value = resources.get(name, self.defaults.get(name))
            if value is None or str(value) == "":
                continue
            value = str(value)
            template = self.options.get((name, value), self.options.get((name, "*")))
            if template is None:
                raise UsageError(f"--{name} {value}: none of {', '.join(self.sources)} has an "
                                 f"'option {name}=*' or 'option {name}={value}' line saying how to ask Slurm for it")
            args += [word.replace("$0", value) for word in template]
        return args


def _job_name(spec):
    name = Path(spec.log).name
    name = name.removesuffix(".log")
    if spec.var:
        name = name.replace(f".{spec.var}", "").replace(spec.var, "")
    return name or "rellm"


def _array_ranges(task_ids):
    """[1, 2, 3, 5] -> '1-3,5' (sbatch --array syntax)."""
    parts, run = [], [task_ids[0]]
    for j in task_ids[1:]:
        if j == run[-1] + 1:
            run.append(j)
        else:
            parts.append(run)
            run = [j]
    parts.append(run)
    return ",".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in parts)


def _require(program):
    found = shutil.which(program)
    if not found:
        raise UsageError(f"{program} not found on PATH: the Slurm backend needs Slurm's client tools "
                         "(use RELLM_CMD_BACKEND=local to run on this machine instead)")
    return found


def _write_batch_files(spec, slurm_dir, name):
    slurm_dir.mkdir(parents=True, exist_ok=True)
    spec_path = (slurm_dir / f"{name}.json").resolve()
    spec_path.write_text(json.dumps(spec.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    script_path = slurm_dir / f"{name}.sh"
    script_path.write_text(
        "#!/bin/bash\n"
        f"# Written by rellm.jobs.slurm: task ${{SLURM_ARRAY_TASK_ID}} of {shlex.join(spec.command)}\n"
        "# (the command and its arguments are read from the JSON spec, never by this shell)\n"
        f"export PYTHONPATH={shlex.quote(str(_REPO_ROOT))}${{PYTHONPATH:+:$PYTHONPATH}}\n"
        f"exec {shlex.quote(sys.executable)} -m rellm.jobs.task {shlex.quote(str(spec_path))} "
        '"${SLURM_ARRAY_TASK_ID}"\n',
        encoding="utf-8",
    )
    return script_path


SQUEUE_GIVE_UP_S = 900  # the controller may restart or be busy; a quarter of an hour of failures is an outage


def _wait(job_id, poll_interval):
    """Poll squeue until the job has left the queue (squeue lists only pending/running jobs).

    Short jobs are seen to end quickly: the delay starts at 1 s and grows to ``poll_interval``.
    """
    squeue = _require("squeue")
    delay = min(1.0, poll_interval)
    failing_since = None
    while True:
        result = subprocess.run([squeue, "-h", "-j", job_id, "-o", "%i"], capture_output=True, text=True, check=False)
        if result.returncode == 0 and not result.stdout.strip():
            return
        if result.returncode != 0 and "Invalid job id" in result.stderr:
            return  # already purged from the controller's memory: finished
        if result.returncode != 0:
            failing_since = failing_since or time.monotonic()
            if time.monotonic() - failing_since > SQUEUE_GIVE_UP_S:
                raise SlurmUnreachableError(
                    f"squeue has failed for {SQUEUE_GIVE_UP_S} s ({result.stderr.strip()}); Slurm job {job_id} "
                    "may still run: check it with 'squeue -j' and re-run with --pick failed when it is done")
            print(f"# squeue failed ({result.stderr.strip()}); retrying", file=sys.stderr, flush=True)
        else:
            failing_since = None
        time.sleep(delay)
        delay = min(poll_interval, delay * 1.5)


class SlurmUnreachableError(RuntimeError):
    """squeue kept failing: the job's fate is unknown (it is not cancelled)."""


def run_slurm(spec):
    """Submit ``spec`` as one array job, wait, check every task; return the runner's exit status.

    ``spec.backend_options``: ``config`` (default conf/slurm.conf), ``poll_interval`` (the longest wait
    between two squeue calls, in seconds; default $RELLM_SLURM_POLL_INTERVAL or 30).
    """
    config = SlurmConfig.load(spec.backend_options.get("config") or "conf/slurm.conf")
    default_poll = os.environ.get("RELLM_SLURM_POLL_INTERVAL", "30")
    try:
        poll_interval = float(spec.backend_options.get("poll_interval", default_poll))
    except ValueError:
        raise UsageError(f"--poll_interval (or RELLM_SLURM_POLL_INTERVAL) must be a number of seconds, "
                         f"got {spec.backend_options.get('poll_interval', default_poll)!r}") from None
    if poll_interval <= 0:
        raise UsageError(f"--poll_interval must be > 0, got {poll_interval}")
    task_ids = tasks_to_run(spec)
    if not task_ids:
        print(f"# all {len(spec.task_ids)} job(s) already succeeded ({spec.describe_logs()}); nothing to submit")
        return 0
    name = _job_name(spec)
    slurm_dir = Path(spec.log_of(spec.start)).parent / "slurm"
    script = _write_batch_files(spec, slurm_dir, name)
    array = _array_ranges(task_ids)
    if spec.max_jobs_run:
        array += f"%{spec.max_jobs_run}"
    submit = [*config.command, *config.sbatch_options(spec.resources), f"--job-name={name}", f"--array={array}",
              f"--output={slurm_dir / name}.%A_%a.out", f"--chdir={os.getcwd()}", "--parsable", str(script)]
    _require(submit[0])
    # remove the logs of the tasks about to run, so that a stale "code 0" can never be read as this run's result;
    # first make sure no task of another run still writes one of them (it would lose its log)
    refuse_logs_in_use(spec.log_of(j) for j in task_ids)
    for j in task_ids:
        Path(spec.log_of(j)).unlink(missing_ok=True)
    result = subprocess.run(submit, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        print(f"ERROR: submission failed (exit code {result.returncode}): {shlex.join(submit)}\n"
              f"{result.stderr.strip()}", file=sys.stderr)
        return 1
    job_id = result.stdout.strip().split(";")[0]
    print(f"# submitted Slurm job {job_id} ({len(task_ids)} task(s), array {array}); "
          f"log(s): {spec.describe_logs(task_ids)}", flush=True)
    # the logs appear as Slurm starts the tasks (the old ones were removed above): one progress line from them
    progress = ArrayProgress(spec, task_ids, slots=spec.max_jobs_run or len(task_ids), tracked=False)
    try:
        with ProgressLine(progress):
            _wait(job_id, poll_interval)
    except SlurmUnreachableError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 1
    except BaseException:  # Ctrl-C, or the runner killed: leave nothing running behind the user's back
        subprocess.run([shutil.which("scancel") or "scancel", job_id], capture_output=True, check=False)
        print(f"# cancelled Slurm job {job_id}", file=sys.stderr)
        raise

    def slurm_output(task_id):
        path = slurm_dir / f"{name}.{job_id}_{task_id}.out"
        text = tail(path, TAIL_LINES)
        return (path, text) if text else None

    return report_failures(spec, task_ids, failed_tasks(spec, task_ids), extra_tail=slurm_output)
