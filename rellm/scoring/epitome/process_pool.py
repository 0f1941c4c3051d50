"""The mechanisms train in ``num_jobs`` processes at once, split by estimated cost."""
import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor

from rellm.scoring.epitome.group_training import train_group
from rellm.scoring.epitome.options import response_max_len, trainable_layers


def parallel_jobs(num_jobs, n_tasks, num_threads):
    """Processes for ``n_tasks`` mechanisms: ``num_jobs``, or (null) the usable CPUs // ``num_threads``."""
    if num_jobs in (None, "auto"):
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        num_jobs = cpus // max(1, int(num_threads))
    return max(1, min(int(num_jobs), n_tasks))


def training_cost(options):
    """Relative cost of training one classifier: epochs x response tokens x trained responder blocks."""
    layers = trainable_layers(options["responder_trainable_layers"])
    return options["epochs"] * response_max_len(options) * (12 if layers is None else layers)  # all: say 12


def plan_groups(costs, jobs):
    """Split ``{mech: cost}`` into at most ``jobs`` groups of similar total cost (costliest first, to the lightest)."""
    groups, loads = [[] for _ in range(jobs)], [0] * jobs
    for mech in sorted(costs, key=lambda m: -costs[m]):
        k = loads.index(min(loads))
        groups[k].append(mech)
        loads[k] += costs[mech]
    return [group for group in groups if group]


def train_groups_in_processes(groups, conf, data_dir, root, marker_options, encoders):
    """Train each group in its own process; returns the CPU seconds of all of them.

    A failure is raised after the other groups finish: their classifiers stay trained and cached.
    """
    log_files = [h.baseFilename for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    context = multiprocessing.get_context("spawn")  # fork would copy the parent's thread pools and locks
    with ProcessPoolExecutor(len(groups), mp_context=context) as pool:
        futures = [pool.submit(_train_group_in_process, conf, data_dir, root, group, marker_options, encoders,
                               log_files[0] if log_files else None) for group in groups]
        return sum(f.result() for f in futures)


def _train_group_in_process(conf, data_dir, root, mechanisms, marker_options, encoders, log_file):
    """Entry of a worker process: train ``mechanisms`` one after the other; returns the process's CPU seconds."""
    from rellm.utils.logging import setup_logging

    setup_logging(log_file, tag="+".join(mechanisms))
    train_group(conf, data_dir, root, mechanisms, marker_options, progress=False, encoders=encoders)
    return time.process_time()
