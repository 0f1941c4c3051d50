"""Job runners: one command-line interface, a local and a Slurm backend.

::

    ${cmd} [--gpu N] [--mem M] [--time T] [--num_threads K] [--max_jobs_run K] [--pick all|failed]
           JOB=1:N logdir/name.JOB.log command args... JOB
    ${cmd} [options] logdir/name.log command args...        # a single job

Every task's log starts with the exact command and ends with its exit code and elapsed time.
A failing task makes the runner exit non-zero, naming the failing log(s) and printing the tail
of the first. ``--pick failed`` runs only the tasks whose log does not record exit code 0.
The Slurm backend also takes ``--config conf/slurm.conf`` and ``--poll_interval SECONDS``.
Entry points: ``tools/run.py`` (local), ``tools/slurm.py`` (Slurm), ``python -m rellm.jobs local|slurm``.
"""
import sys

from rellm.jobs.spec import JobSpec, UsageError, parse_job_args
from rellm.jobs.task import LOG_IN_USE
from rellm.utils.lock import LockHeldError

BACKENDS = ("local", "slurm")


def main(argv=None, backend=None):
    """Run a job array with ``backend`` ('local' or 'slurm'; taken from argv[0] when None)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if backend is None:
        if not argv or argv[0] not in BACKENDS:
            print(f"usage: python -m rellm.jobs {{{'|'.join(BACKENDS)}}} [options] [JOB=1:N] log command...",
                  file=sys.stderr)
            return 2
        backend, argv = argv[0], argv[1:]
    program = {"local": "run.py", "slurm": "slurm.py"}[backend]
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__.replace("${cmd}", program))
        return 0
    try:
        if backend == "local":
            from rellm.jobs.local import run_local

            return run_local(parse_job_args(argv, program))
        from rellm.jobs.slurm import run_slurm

        return run_slurm(parse_job_args(argv, program, extra_options=("config", "poll_interval")))
    except UsageError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 2
    except LockHeldError as err:  # a task of another run still writes one of the logs: its log is left alone
        print(f"ERROR: {err}", file=sys.stderr)
        return LOG_IN_USE
    except KeyboardInterrupt:
        print(f"{program}: interrupted", file=sys.stderr)
        return 130


__all__ = ["JobSpec", "UsageError", "main", "parse_job_args"]
