"""Stage 4 as the recipe runs it (``rellm.bin.train``): the config checked at start-up (feature widths, the sizes
``init_from`` fixes), the device and precision, one run per experiment folder at a time (its lock), the done marker
and lineage, resuming or setting aside an earlier run, the experiment's records (``hyperparams.yaml``, ``env.log``)
and the two alignment steps (``rellm.training.align``).
"""
import logging
import os
import subprocess
import sys
from pathlib import Path

from rellm.utils.config import ConfigError, load_config, plain_yaml, resolved_yaml
from rellm.utils.experiment_dir import ExperimentDir
from rellm.utils.io import atomic_write_text
from rellm.utils.logging import setup_logging
from rellm.utils.stage import DoneMarker, OptionsChangedError
from rellm.utils.torch_device import auto_precision

logger = logging.getLogger("rellm.training.stage")


PLACEMENT_KEYS = ("ngpu", "num_workers", "noprogressbar", "ckpt_interval_minutes", "ckpt_interval_steps")


def plain_values(config_path, overrides):
    return plain_yaml(resolved_yaml(config_path, overrides))


def resolve_auto_dims(config_path, overrides):
    """``speech_dim: auto`` / ``emotion_dim: auto`` -> the widths stored in the training feature cache; a fixed
    width that differs from the cache's is an error at start-up saying what to set (not a traceback at step 1)."""
    values = plain_values(config_path, overrides)
    keys_dims = [k for k in ("speech_dim", "emotion_dim") if k in values]
    auto = [k for k in keys_dims if values.get(k) == "auto"]
    folder = Path(values["feats_dir"]) / values["train_set"]
    if not auto and not (folder / "index.jsonl").is_file():
        return overrides
    from rellm.features.cache import open_feature_cache

    cache = open_feature_cache(folder)
    if not len(cache):
        raise ConfigError(f"the feature cache {values['feats_dir']}/{values['train_set']} is empty; re-run stage 2")
    # from the cache's index and shapes, without torch: a finished experiment is skipped in a second
    dims = {"speech_dim": int(cache.whisper_dim), "emotion_dim": int(cache.emotion_dim)}
    for key in keys_dims:
        value = values[key]
        if key in auto or value in (None, 0) or int(value) == dims[key]:
            continue
        what = "Whisper states" if key == "speech_dim" else "emotion embeddings"
        raise ConfigError(
            f"{key} is {value} but the {what} cached in {folder} are {dims[key]} wide (stage 2 used another "
            f"encoder): pass --train_args \"--{key}=auto\" (reads the width from the cache), or re-run stage 2 with "
            "the encoder this config expects")
    return {**overrides, **{k: dims[k] for k in auto}}


INIT_FROM_KEYS = ("adapter_bottleneck_dim", "lora_r", "lora_alpha")


def check_init_from(values):
    """The sizes a model continued from ``init_from`` must share with it, checked at start-up (one line naming the
    overrides to pass) rather than as a shape error once the LLM is loaded."""
    import json

    init = values.get("init_from")
    meta_path = ExperimentDir(str(init)).final_config if init else None
    if meta_path is None or not meta_path.is_file():
        return
    model = json.loads(meta_path.read_text(encoding="utf-8")).get("model", {})
    wrong = [k for k in INIT_FROM_KEYS if k in model and k in values and str(model[k]) != str(values[k])]
    if wrong:
        fix = " ".join(f"--{k}={model[k]}" for k in wrong)
        raise ConfigError(
            f"init_from {init} has {', '.join(f'{k}={model[k]}' for k in wrong)} but this config says "
            f"{', '.join(f'{k}={values[k]}' for k in wrong)}: pass --train_args \"{fix}\" (every model that continues it: RE-LLM and blsp_emo_ft; or fix conf/), or "
            "--init_from=null to train both steps")


def relaunch_with_torchrun(ngpu, argv):
    """``--ngpu N`` (N > 1) outside torchrun: run this same command under torchrun and return its status."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ngpu}",
           "-m", "rellm.bin.train", *argv]
    print("launching", " ".join(cmd), file=sys.stderr, flush=True)
    return subprocess.call(cmd)


def run_options(hp):
    """SpeechBrain run options from the config: device, precision, DDP backend."""
    import torch

    distributed = os.environ.get("RANK") is not None and os.environ.get("LOCAL_RANK") is not None
    if int(hp["ngpu"]) > 0:
        if not torch.cuda.is_available():
            raise ConfigError(
                f"--ngpu {hp['ngpu']} but no CUDA device is visible to stage 4: run it on a GPU node (a 7B LLM does "
                "not train on a CPU); only small LLMs such as the mini recipe's train on the CPU, with ./run.sh --ngpu 0")
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    else:
        device = "cpu"
    precision = hp["precision"]
    if precision in ("auto", "fast"):  # fast: bf16 autocast also on a CPU with hardware bf16
        precision = auto_precision(precision, device)
    return {"device": device, "precision": precision, "eval_precision": precision,
            "distributed_backend": "nccl" if device.startswith("cuda") else "gloo",
            "find_unused_parameters": False, "distributed_launch": distributed}


def write_experiment_files(output_folder, config_path, overrides):
    """hyperparams.yaml (resolved config), env.log; warns when a resumed run's config differs."""
    import speechbrain as sb

    exp = ExperimentDir(output_folder)
    text = f"# resolved from {Path(config_path).resolve()}\n" + resolved_yaml(config_path, overrides)
    saved = exp.hyperparams
    if saved.exists() and saved.read_text(encoding="utf-8").split("\n", 1)[-1] != text.split("\n", 1)[-1]:
        old, new = plain_yaml(saved.read_text(encoding="utf-8")), plain_yaml(text)
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        logger.warning("the config differs from the one this experiment started with (keys: %s); "
                       "resuming with the new values, previous config kept in hyperparams.prev.yaml", changed)
        atomic_write_text(exp.previous_hyperparams, saved.read_text(encoding="utf-8"))
    atomic_write_text(saved, text)
    from rellm.utils.revision import git_revision

    rev, dirty = git_revision()
    env = sb.utils.logger.get_environment_description() + f"\nrellm git: {rev}{' (dirty)' if dirty else ''}\n"
    atomic_write_text(exp.env_log, env)


def run_stage(config_path, overrides, argv):
    """Stage 4 for ``config_path`` with ``overrides`` (``argv``: the command line, run again under torchrun for
    ``--ngpu N``); returns the exit status."""
    # --overwrite=true (./run.sh --overwrite true): retrain even when the folder was trained with other options
    overwrite = str(overrides.pop("overwrite", "false")).strip().lower() == "true"
    argv = [a for a in argv if not a.startswith("--overwrite")]
    values = plain_values(config_path, overrides)
    if int(values.get("ngpu", 0)) > 1 and os.environ.get("RANK") is None:
        return sys.exit(relaunch_with_torchrun(int(values["ngpu"]), argv))

    overrides = resolve_auto_dims(config_path, overrides)
    check_init_from(values)
    if values.get("llm_dtype") in ("auto", "fast"):  # bf16 frozen LLM weights on bf16-capable GPUs (fast: CPUs too)
        # torch only on a GPU run: a CPU run checks its done marker without it
        bf16 = auto_precision(values["llm_dtype"], "cuda" if int(values.get("ngpu", 0)) > 0 else "cpu") == "bf16"
        overrides = {**overrides, "llm_dtype": "bfloat16" if bf16 else "float32"}
    output_folder = Path(values["output_folder"])
    main_process = os.environ.get("RANK", "0") == "0"
    from rellm.utils.lock import OutputLock

    # one run at a time per experiment folder, taken before its log is opened (a refused run leaves the running
    # one's log alone); the kernel releases it when the process dies, even by SIGKILL
    lock = OutputLock(output_folder, "train", what=f"the experiment {output_folder}")
    if main_process:
        lock.acquire()
    try:
        setup_logging(ExperimentDir(output_folder).log if main_process else None)
        return _train(config_path, overrides, values, output_folder, main_process, overwrite)
    finally:
        lock.release()


def previous_run_action(exp, run, done_exists, overwrite):
    """What to do with an experiment folder's save/ and final/ before training the run ``run``:

    - ``"fresh"``: nothing there;
    - ``"resume"``: save/ belongs to this same run (same options and inputs), interrupted: go on from its newest
      checkpoint; also a folder from before runs were recorded (no done marker, no ``.started.train``);
    - ``"set_aside"``: they come from a run with other options or inputs and ``--overwrite`` asks to redo it: the
      new run must start from its initialisation, not restore the old checkpoints (and their epoch counters).
    An unfinished run with other options or inputs, without ``--overwrite``, is an error.
    """
    if not exp.has_previous_run():
        return "fresh"
    started = exp.started_run()
    if started == run:
        return "resume"
    if started is None and not done_exists and not overwrite:
        logger.warning("%s holds checkpoints that record no options: resuming from them (pass --overwrite=true to "
                       "start over)", exp.save)
        return "resume"
    if overwrite:
        return "set_aside"
    raise OptionsChangedError(
        f"{exp.save} holds the checkpoints of an unfinished run with other options or inputs: to start this run "
        "over, re-run with ./run.sh --overwrite true (or --overwrite=true here); to finish that run, re-run it with "
        f"its own options ({exp.hyperparams})")


def _train(config_path, overrides, values, output_folder, main_process, overwrite=False):
    from rellm.training.inputs import run_fingerprint, training_inputs

    exp = ExperimentDir(output_folder)
    done = DoneMarker(output_folder, "train", hint="re-run with ./run.sh --overwrite true (or --overwrite=true "
                      "here), or use another --output_folder", stage="4")
    # Placement options (device count, loader workers) do not change the result: not in the fingerprint.
    options = {"config": str(Path(config_path).resolve()),
               **{k: v for k, v in overrides.items() if k not in PLACEMENT_KEYS}}
    inputs = training_inputs(values, config_path)  # the config's text, the data, responses, features, init, LLM
    if done.is_done(options, overwrite=overwrite, inputs=inputs) and exp.has_final():
        logger.info("%s is already trained with these options; nothing to do", output_folder)
        return 0
    run = run_fingerprint(options, inputs)
    action = previous_run_action(exp, run, done.path.is_file(), overwrite)
    import speechbrain as sb

    hp = load_config(config_path, overrides)  # seeds, then builds the model (loads the LLM)
    run_opts = run_options(hp)
    sb.utils.distributed.ddp_init_group(run_opts)
    if main_process:
        done.clear()
        if action == "set_aside":
            moved = exp.set_aside_previous_run()
            logger.info("--overwrite: training from the initialisation; the earlier run's %s moved to %s until "
                        "this run has written its final/", " and ".join(moved), exp.replaced)
        exp.mark_started(run)
        write_experiment_files(output_folder, config_path, overrides)
    sb.utils.distributed.ddp_barrier()  # no rank may look for checkpoints before the old ones are set aside
    logger.info("stage 4: %s -> %s (device %s, precision %s)", config_path, output_folder, run_opts["device"],
                run_opts["precision"])

    from rellm.training.align import train_two_steps

    train_two_steps(hp, run_opts)
    if main_process:
        done.mark_done(options, inputs=inputs)
        exp.remove_set_aside()
    return 0

