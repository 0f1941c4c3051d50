"""Local backend: the tasks of an array run on this machine, at most ``--max_jobs_run`` at once.

``--gpu N`` gives each task N GPUs of its own (``CUDA_VISIBLE_DEVICES``), taken from the GPUs this
process sees (``CUDA_VISIBLE_DEVICES``, else ``nvidia-smi -L``), so parallel tasks never share a GPU;
fewer tasks run at once when there are not enough GPUs. ``--num_threads`` sets OMP/MKL/OpenBLAS
thread counts of each task. ``--mem``, ``--time`` and ``--partition`` are accepted so that a recipe
runs unchanged on either backend; only a scheduler can enforce them, so locally they have no effect.
While the tasks run, the console shows one progress line read from their logs (``rellm.jobs.progress``).
"""
import os
import queue
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from rellm.jobs.outcome import failed_tasks, report_failures, tasks_to_run
from rellm.jobs.progress import ArrayProgress, ProgressLine
from rellm.jobs.task import refuse_logs_in_use, run_task, task_command


def visible_gpus():
    """Ids of the GPUs this process may use: ``CUDA_VISIBLE_DEVICES`` when set, else those ``nvidia-smi -L`` lists."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [gpu.strip() for gpu in visible.split(",") if gpu.strip() and gpu.strip() != "-1"]
    nvidia_smi = shutil.which("nvidia-smi")
    if not nvidia_smi:
        return []
    listing = subprocess.run([nvidia_smi, "-L"], capture_output=True, text=True, check=False).stdout
    return [str(i) for i, line in enumerate(line for line in listing.splitlines() if line.startswith("GPU "))]


def gpu_groups(gpus_per_task):
    """Disjoint groups of ``gpus_per_task`` GPU ids, one per task that may run at once (``[]``: no GPU use)."""
    if not gpus_per_task:
        return []
    gpus = visible_gpus()
    if not gpus:
        print(f"WARNING: --gpu {gpus_per_task} asked for, but no GPU is visible (CUDA_VISIBLE_DEVICES, nvidia-smi); "
              "the tasks run without one", file=sys.stderr, flush=True)
        return []
    if len(gpus) < gpus_per_task:
        print(f"WARNING: --gpu {gpus_per_task} asked for, but only {len(gpus)} GPU(s) are visible ({','.join(gpus)}); "
              "each task gets all of them, one task at a time", file=sys.stderr, flush=True)
        return [gpus]
    return [gpus[k * gpus_per_task:(k + 1) * gpus_per_task] for k in range(len(gpus) // gpus_per_task)]


def run_local(spec):
    """Run the tasks of ``spec``; return the runner's exit status (0 when every task exited 0)."""
    task_ids = tasks_to_run(spec)
    if not task_ids:
        print(f"# all {len(spec.task_ids)} job(s) already succeeded ({spec.describe_logs()}); nothing to run")
        return 0
    refuse_logs_in_use(spec.log_of(j) for j in task_ids)  # another run's tasks still at work: stop, name them
    max_jobs = spec.max_jobs_run or os.cpu_count() or 1
    groups = gpu_groups(spec.resources.get("gpu", 0))
    free_groups = queue.Queue()
    for group in groups:
        free_groups.put(group)
    if groups:
        max_jobs = min(max_jobs, len(groups))
    env = spec.task_env()
    print(f"# running {len(task_ids)} job(s) locally, {min(max_jobs, len(task_ids))} at once"
          f"{', GPUs ' + ' '.join(','.join(g) for g in groups) if groups else ''}; "
          f"log(s): {spec.describe_logs(task_ids)}", flush=True)

    progress = ArrayProgress(spec, task_ids, slots=min(max_jobs, len(task_ids)), tracked=True)

    def run_one(task_id):
        description = f"task {task_id} of {spec.var}={spec.start}:{spec.end}" if spec.var else ""
        group = free_groups.get() if groups else None
        task_env = dict(env, CUDA_VISIBLE_DEVICES=",".join(group)) if group else env
        progress.started(task_id)  # from here its log is this run's, once rewritten (rellm.jobs.progress)
        try:
            return run_task(task_command(spec.command, spec.var, task_id), spec.log_of(task_id), env=task_env,
                            description=description)
        finally:
            if group:
                free_groups.put(group)

    # the tasks' logs keep every detail; the console gets one progress line (rellm.jobs.progress)
    with ProgressLine(progress), ThreadPoolExecutor(max_workers=max_jobs) as pool:
        list(pool.map(run_one, task_ids))
    return report_failures(spec, task_ids, failed_tasks(spec, task_ids))
