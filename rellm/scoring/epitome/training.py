"""Training (or reusing from the cache) the three EPITOME classifiers.

One model per mechanism (ER, IP, EX) is trained on the Reddit annotations with
a fixed stratified 75:5:20 split, selected on the dev part, evaluated on the
test part and cached (the layout: ``rellm.scoring.epitome.model_cache``).

The pieces: ``options`` (what makes a model), ``encoders`` (base model, frozen encoder
states), ``batching``, ``training_loop`` (one classifier), ``group_training`` (the
mechanisms of one process), ``process_pool`` (several processes), ``scorer``
(``EpitomeScorer``: scoring with the cached classifiers).
``device: cuda`` trains on a GPU instead (an IP classifier in ~12 s on an H200, against
4-5 min on one CPU core); the device is not part of the cache fingerprint.
"""
import logging
import time
from pathlib import Path

from rellm.scoring.epitome.data import CSV_FILES, MECHANISMS, sha256_file
from rellm.scoring.epitome.model_cache import MODEL_FILE, epitome_cache_dir, load_metrics
from rellm.scoring.epitome.options import train_options, training_device
from rellm.utils.io import atomic_write_json
from rellm.utils.lock import OutputLock
from rellm.utils.stage import DoneMarker

logger = logging.getLogger(__name__)


def train_all(conf, data_dir, cache_root, overwrite=False, progress=True, encoders=None):
    """Train (or reuse from the cache) one classifier per mechanism; returns ``{mech: test metrics}``.

    Any training option may be one value or a per-mechanism mapping (``lr: {ER: 1e-4, IP: 5e-5, EX: 1e-4}``);
    a mechanism is retrained only when its own resolved options change. With ``num_jobs`` > 1 (null: as
    many as the CPUs allow at ``num_threads`` each) the mechanisms train in that many processes at once;
    the models are the same as when they train one after the other.
    ``encoders`` = ``(AutoModel, tokenizer)`` to use instead of loading ``conf['encoder']`` (tests pass tiny ones).
    """
    if isinstance(conf["encoder"], dict) or isinstance(conf["max_len"], dict):
        raise TypeError("encoder and max_len are shared by the three classifiers; give one value")
    root = epitome_cache_dir(cache_root, conf["encoder"], conf.get("encoder_tag"))
    if str(conf.get("device") or "cpu").startswith("cuda"):  # (torch is imported only then, or to train)
        training_device(conf)  # a GPU asked for but absent fails here, not in a worker process
    with OutputLock(root, "train", wait=True, what=f"the EPITOME cache {root}"):
        return _train_all_locked(conf, data_dir, root, overwrite, progress, encoders)


def _train_all_locked(conf, data_dir, root, overwrite, progress, encoders):
    todo, marker_options = [], {}
    for mech in conf["mechanisms"]:
        if mech not in MECHANISMS:
            raise ValueError(f"unknown mechanism {mech!r}; expected some of {', '.join(MECHANISMS)}")
        marker_options[mech] = {**train_options(conf, mech), "mechanism": mech,
                                "data_sha256": sha256_file(Path(data_dir) / CSV_FILES[mech])}
        marker = DoneMarker(root / mech, "train", hint="pass --overwrite=true (it retrains into the shared cache)")
        if marker.is_done(marker_options[mech], overwrite) and not (root / mech / MODEL_FILE).is_file():
            logger.warning("EPITOME %s: %s holds no %s (a model.pt from an older rellm is never unpickled); "
                           "retraining it", mech, root / mech, MODEL_FILE)
            todo.append(mech)
        elif marker.is_done(marker_options[mech], overwrite):
            logger.info("EPITOME %s classifier already trained with these options: %s", mech, root / mech)
        else:
            todo.append(mech)
    if not todo:
        return load_metrics(root, conf["mechanisms"])
    # the training code (torch, transformers) only now: cached classifiers are found in a second
    from rellm.scoring.epitome.group_training import train_group
    from rellm.scoring.epitome.process_pool import parallel_jobs, plan_groups, train_groups_in_processes, training_cost

    t0, cpu0 = time.time(), time.process_time()
    groups = plan_groups({m: training_cost(train_options(conf, m)) for m in todo},
                         parallel_jobs(conf.get("num_jobs"), len(todo), conf["num_threads"]))
    if len(groups) == 1:
        train_group(conf, data_dir, root, todo, marker_options, progress, encoders)
        cpu = time.process_time() - cpu0
    else:
        # a progress marker (rellm.jobs.progress): the workers draw no bars, so the console line names the phase
        logger.info("progress: training the EPITOME classifiers %s in %d processes of %d thread(s) each",
                    " and ".join("+".join(g) for g in groups), len(groups), conf["num_threads"])
        workers_cpu = train_groups_in_processes(groups, conf, data_dir, root, marker_options, encoders)
        cpu = time.process_time() - cpu0 + workers_cpu
    summary = {"mechanisms": todo, "groups": groups, "wall_seconds": round(time.time() - t0, 1),
               "cpu_seconds": round(cpu, 1), "num_threads": conf["num_threads"]}
    atomic_write_json(root / "training_time.json", summary)
    logger.info("trained %s in %.1f s wall, %.1f s CPU (the machine may be shared: CPU time is the fairer measure)",
                ", ".join(todo), summary["wall_seconds"], summary["cpu_seconds"])
    return load_metrics(root, conf["mechanisms"])
