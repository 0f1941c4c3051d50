"""Before stage 1: a run that asks for GPUs (``--ngpu`` > 0) where none is visible stops at once, saying what to do.

Without it, stages 2, 3 and 5 would carry on with their models on the CPU (Whisper-large-v2 and a 7B LLM in the
paper recipes: days of work, or an out-of-memory kill hours later) and stage 4 would stop only when it starts.
The check runs when the local job runner would start the GPU stages (2-5) on this machine: a dry run
(``--dry_run true``, always on the CPU), a run of stages 1 or 6 alone, and a run whose jobs go to a scheduler
(``RELLM_CMD_BACKEND=slurm``: the GPUs are on the compute nodes, not where ``run.sh`` runs) are not checked.
"""
import os
import shutil

GPU_STAGES = (2, 3, 4, 5)  # the stages whose jobs run with ${cuda_cmd} --gpu (egs/TEMPLATE/stages.sh)
CPU_CORPORA = ("mini",)  # recipes made for the CPU: small models, ngpu=0 in their run.sh
LOCAL_RUNNERS = ("run.py",)  # tools/run.py (utils/run.py in a recipe): the jobs run on this machine


def _stage_number(value):
    """``2a`` -> 2; run.sh's --stage and --stop_stage are numbers."""
    digits = "".join(ch for ch in str(value) if ch.isdigit())
    return int(digits) if digits else 0


def runs_here(cuda_cmd):
    """Whether ``${cuda_cmd}`` runs its jobs on this machine (the local runner) rather than through a scheduler."""
    words = str(cuda_cmd).split()
    return bool(words) and os.path.basename(words[0]) in LOCAL_RUNNERS


def needs_gpu_here(ngpu, dry_run, stage, stop_stage, cuda_cmd):
    """Whether this run will start GPU jobs on this machine."""
    if int(ngpu) <= 0 or dry_run:
        return False
    first, last = _stage_number(stage), _stage_number(stop_stage)
    if not any(first <= s <= last for s in GPU_STAGES):
        return False
    return runs_here(cuda_cmd)


def advice(corpus):
    """What to do when ``--ngpu`` asks for GPUs that this machine does not have: one sentence."""
    if corpus in CPU_CORPORA:
        return "this recipe's small models run on the CPU: run ./run.sh --ngpu 0"
    return ("stages 2-5 of this recipe run Whisper-large-v2 and a 7B LLM, which need a GPU: run it on a GPU node "
            "(or send its jobs to one with RELLM_CMD_BACKEND=slurm), or check the recipe on this CPU first with "
            "./run.sh --dry_run true (small models; ./run.sh --stop_stage 1 prepares the data alone)")


def gpu_problem(ngpu, dry_run, stage, stop_stage, cuda_cmd, corpus, gpus=None, torch_cuda=None):
    """``None`` when the run may start, else the one-line message saying what to do.

    ``gpus``: the GPU ids this process may use (default: what the local runner sees, ``CUDA_VISIBLE_DEVICES`` or
    ``nvidia-smi``); ``torch_cuda``: whether torch can use them (default: ``torch.cuda.is_available()``, asked only
    when GPUs are listed, so that a machine without any answers without importing torch).
    """
    if not needs_gpu_here(ngpu, dry_run, stage, stop_stage, cuda_cmd):
        return None
    if gpus is None:
        from rellm.jobs.local import visible_gpus

        gpus = visible_gpus()
    if not gpus:
        hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
        if hidden is not None:
            where = f"CUDA_VISIBLE_DEVICES={hidden!r}"
        else:
            where = "nvidia-smi lists none" if shutil.which("nvidia-smi") else "no nvidia-smi"
        return f"--ngpu {ngpu} asks for a GPU, but none is visible on this machine ({where}); {advice(corpus)}"
    if torch_cuda is None:
        import torch

        torch_cuda = torch.cuda.is_available()
    if not torch_cuda:
        return (f"--ngpu {ngpu}: GPU(s) {','.join(gpus)} are listed, but this torch cannot use them (a CPU-only "
                "build?): reinstall it for your CUDA with TORCH_INDEX_URL=https://download.pytorch.org/whl/<cuda> "
                f"make install, or {advice(corpus)}")
    return None
