"""The one command-line interface shared by every job backend.

::

    ${cmd} [--gpu N] [--mem M] [--time T] [--num_threads K] [--max_jobs_run K] [--pick all|failed]
           [JOB=1:N] logdir/name.JOB.log command args... JOB

``JOB=A:B`` runs tasks A..B; every ``JOB`` (any upper-case name may be used)
in the log path and in the arguments becomes the task number. Without it the
command runs once and the arguments are passed unchanged.
"""
import re
from dataclasses import dataclass, field

# generic resource options: how each one is passed on is the backend's business
# (conf/slurm.conf for Slurm; the local backend only uses num_threads)
RESOURCE_OPTIONS = ("gpu", "mem", "time", "num_threads", "partition")
_INT_OPTIONS = ("gpu", "num_threads", "max_jobs_run")
_ARRAY = re.compile(r"^([A-Z][A-Z0-9_]*)=(\d+):(\d+)$")
_SINGLE = re.compile(r"^([A-Z][A-Z0-9_]*)=(\d+)$")


class UsageError(ValueError):
    """The runner's command line is wrong; the message says what to fix."""


@dataclass
class JobSpec:
    """What to run: ``command`` (with ``var`` unsubstituted) for tasks ``start..end``, logs at ``log``."""

    command: list
    log: str
    var: str = ""  # "" for a single job
    start: int = 1
    end: int = 1
    resources: dict = field(default_factory=dict)  # gpu/mem/time/num_threads/partition given on the command line
    max_jobs_run: int = 0  # 0: as many as the backend allows
    pick: str = "all"  # "failed": only the tasks whose log does not record exit code 0
    backend_options: dict = field(default_factory=dict)  # options only one backend knows (Slurm: --config)

    @property
    def task_ids(self):
        return list(range(self.start, self.end + 1))

    def log_of(self, task_id):
        return self.log.replace(self.var, str(task_id)) if self.var else self.log

    def to_json(self):
        return {"command": self.command, "log": self.log, "var": self.var, "start": self.start, "end": self.end,
                "env": self.task_env()}

    def task_env(self):
        """Environment for every task: --num_threads caps the math libraries' thread pools."""
        threads = self.resources.get("num_threads")
        if not threads:
            return {}
        return {name: str(threads) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}

    def describe_logs(self, task_ids=None):
        """The log paths of ``task_ids`` (default: all), listed when few, else as a ``{A..B}`` pattern."""
        task_ids = self.task_ids if task_ids is None else list(task_ids)
        if not self.var:
            return self.log
        if len(task_ids) <= 4:
            return " ".join(self.log_of(j) for j in task_ids)
        if task_ids == list(range(task_ids[0], task_ids[-1] + 1)):
            return self.log.replace(self.var, f"{{{task_ids[0]}..{task_ids[-1]}}}")
        return f"{self.log} for {self.var} in {' '.join(map(str, task_ids))}"


def parse_job_args(argv, program="runner", extra_options=()):
    """Parse the shared interface into a :class:`JobSpec`; ``extra_options`` are backend-specific ``--name value``."""
    known = set(RESOURCE_OPTIONS) | {"max_jobs_run", "pick"} | set(extra_options)
    values, i = {}, 0
    argv = list(argv)
    while i < len(argv) and argv[i].startswith("--"):
        name, has_value, value = argv[i][2:].partition("=")
        name = name.replace("-", "_")
        if name not in known:
            raise UsageError(f"{program}: unknown option --{name}; known options: "
                             + " ".join(f"--{k}" for k in sorted(known)))
        if not has_value:
            if i + 1 >= len(argv):
                raise UsageError(f"{program}: option --{name} needs a value")
            value = argv[i + 1]
            i += 1
        values[name] = value
        i += 1
    for name in _INT_OPTIONS:
        if name in values:
            try:
                values[name] = int(values[name])
            except ValueError:
                raise UsageError(f"{program}: --{name} must be an integer, got {values[name]!r}") from None
            if values[name] < 0:
                raise UsageError(f"{program}: --{name} must be >= 0, got {values[name]}")
    pick = values.pop("pick", "all")
    if pick not in ("all", "failed"):
        raise UsageError(f"{program}: --pick must be 'all' or 'failed', got {pick!r}")

    rest = argv[i:]
    var, start, end = "", 1, 1
    if rest and (_ARRAY.match(rest[0]) or _SINGLE.match(rest[0])):
        match = _ARRAY.match(rest[0])
        if match:
            var, start, end = match.group(1), int(match.group(2)), int(match.group(3))
        else:
            match = _SINGLE.match(rest[0])
            var, start = match.group(1), int(match.group(2))
            end = start
        if not 1 <= start <= end:
            raise UsageError(f"{program}: bad range {rest[0]!r}: need 1 <= start <= end")
        rest = rest[1:]
    elif rest and "=" in rest[0] and rest[0].split("=", 1)[0].isupper():
        raise UsageError(f"{program}: bad job range {rest[0]!r}; expected e.g. JOB=1:4")
    if len(rest) < 2:
        raise UsageError(
            f"usage: {program} [options] [JOB=1:N] logdir/name.JOB.log command args...\n"
            f"{program}: missing the log file and the command"
        )
    log, command = rest[0], rest[1:]
    if var and var not in log:
        raise UsageError(f"{program}: the log path {log!r} must contain {var} so that every task has its own log")
    extra = {k: values.pop(k) for k in list(values) if k in extra_options}
    return JobSpec(
        command=command,
        log=log,
        var=var,
        start=start,
        end=end,
        resources={k: values[k] for k in RESOURCE_OPTIONS if k in values},
        max_jobs_run=values.get("max_jobs_run", 0),
        pick=pick,
        backend_options=extra,
    )
