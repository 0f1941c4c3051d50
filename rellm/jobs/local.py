"""Local backend: the tasks of an array run on this machine, at most ``--max_jobs_run`` at once.

``--gpu``, ``--mem``, ``--time`` and ``--partition`` are accepted so that a recipe runs unchanged
on either backend; only a scheduler can enforce them, so locally they have no effect.
``--num_threads`` sets OMP/MKL/OpenBLAS thread counts of each task.
"""
import os
from concurrent.futures import ThreadPoolExecutor

from rellm.jobs.outcome import failed_tasks, report_failures, tasks_to_run
from rellm.jobs.task import run_task, task_command


def run_local(spec):
    """Run the tasks of ``spec``; return the runner's exit status (0 when every task exited 0)."""
    task_ids = tasks_to_run(spec)
    if not task_ids:
        print(f"# all {len(spec.task_ids)} job(s) already succeeded ({spec.describe_logs()}); nothing to run")
        return 0
    max_jobs = spec.max_jobs_run or os.cpu_count() or 1
    env = spec.task_env()
    print(f"# running {len(task_ids)} job(s) locally, {min(max_jobs, len(task_ids))} at once; "
          f"log(s): {spec.describe_logs(task_ids)}", flush=True)

    def run_one(task_id):
        description = f"task {task_id} of {spec.var}={spec.start}:{spec.end}" if spec.var else ""
        return run_task(task_command(spec.command, spec.var, task_id), spec.log_of(task_id), env=env,
                        description=description)

    with ThreadPoolExecutor(max_workers=max_jobs) as pool:
        list(pool.map(run_one, task_ids))
    return report_failures(spec, task_ids, failed_tasks(spec, task_ids))
