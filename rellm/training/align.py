"""Stage 4 orchestration: the two alignment steps of BLSP-Emo / RE-LLM, resumable end to end.

    step 0 ctc       (save/step0_ctc)        optional (step1_ctc_epochs > 0, not in the paper): adapter only,
                                             CTC to the LLM's token embeddings (rellm.training.ctc_warmup)
    step 1 semantic  (save/step1_semantic)   adapter only, KL to the text LLM on continuation.jsonl
    step 2 behaviour (save/step2_behaviour)  adapter + PLoRA + heads on expected.jsonl
    final/                                   own parameters + model.json, for stage 5

(the folder's layout: ``rellm.utils.experiment_dir``). Each step has its own
``AtomicCheckpointer``; re-running the same command skips finished steps (their epoch
counters are recovered at the end) and resumes an interrupted one from its newest complete
checkpoint, including mid-epoch ones written every ``ckpt_interval_minutes``.
"""
import logging
from pathlib import Path

import speechbrain as sb
import torch
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.dataio.sampler import DynamicBatchSampler
from speechbrain.utils.epoch_loop import EpochCounter
from speechbrain.utils.train_logger import FileTrainLogger

from rellm.data.manifest import read_manifest
from rellm.data.pipelines import build_alignment_dataset
from rellm.features.cache import open_feature_cache, read_feature_meta
from rellm.models.final_state import load_final_state
from rellm.training.brain import AlignBrain
from rellm.training.checkpointing import AtomicCheckpointer, RNGState, TrainableParameters, WarmupDecayLR
from rellm.training.ctc_warmup import run_ctc_warmup
from rellm.training.curves import TrainingCurves
from rellm.utils.experiment_dir import ExperimentDir
from rellm.utils.io import atomic_write_json, read_jsonl

logger = logging.getLogger(__name__)

STEPS = ("semantic", "behaviour")
STEP_DIRS = {"semantic": "step1_semantic", "behaviour": "step2_behaviour"}


def step_data(hp, step):
    """``(data_dir, feats_dir, responses_dir, train_set, valid_set)`` of a step.

    Step 1 (semantic) reads the ASR data named by ``step1_data_dir`` / ``step1_feats_dir`` /
    ``step1_responses_dir`` when set (BLSP-Emo: GigaSpeech; run.sh ``--step1_data librispeech``),
    else the SER corpus's own sets; step 2 always reads the SER corpus.
    """
    if step == "semantic" and hp["step1_data_dir"]:
        missing = [k for k in ("step1_feats_dir", "step1_responses_dir") if not hp[k]]
        if missing:
            raise ValueError(f"step1_data_dir is set but {', '.join(missing)} is not; give all three "
                             "(run.sh: --step1_data NAME sets them to data/NAME, dump/NAME, exp/responses/NAME)")
        return (hp["step1_data_dir"], hp["step1_feats_dir"], hp["step1_responses_dir"], hp["step1_train_set"],
                hp["step1_valid_set"])
    return hp["data_dir"], hp["feats_dir"], hp["responses_dir"], hp["train_set"], hp["valid_set"]


def load_set(hp, set_name, step, layout, dirs=None):
    """``(dataset, report)`` for one set and one step (``dirs``: data, feats and responses folders)."""
    data_dir, feats_dir, responses_dir = dirs or (hp["data_dir"], hp["feats_dir"], hp["responses_dir"])
    manifest_path = Path(data_dir) / f"{set_name}.json"
    kind = "continuation" if step == "semantic" else "expected"
    responses_path = Path(responses_dir) / set_name / f"{kind}.jsonl"
    for path, stage in ((manifest_path, "1 (rellm.bin.prepare)"), (responses_path, "3 (rellm.bin.respond)")):
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist; run stage {stage} first")
    cache = open_feature_cache(Path(feats_dir) / set_name)
    behaviour = step == "behaviour"
    teacher_system = None
    if step == "semantic":
        teacher_system = hp["system_prompt"]
    elif hp["response_loss"] == "kl":
        teacher_system = hp["system_prompt_empathetic"]
    # docs/released_code.md#training: how the target ends, and (KL steps only) where the logits are compared
    kl_positions = hp.get("kl_positions", "predicting") if teacher_system is not None else "predicting"
    return build_alignment_dataset(
        read_manifest(manifest_path), read_jsonl(responses_path), cache, layout,
        system_prompt=hp["system_prompt_empathetic"] if behaviour else hp["system_prompt"],
        instruction=hp["behaviour_instruction"] if behaviour else hp["semantic_instruction"],
        teacher_system_prompt=teacher_system,
        with_emotion=hp["emotion_dim"] > 0,
        need_emotion_label=behaviour and hp["lambda_cat"] > 0,
        need_avd_target=behaviour and hp["lambda_dim"] > 0,
        avd_source=hp["avd_source"], min_duration=hp["min_duration"], max_duration=hp["max_duration"],
        max_text_tokens=hp["max_text_tokens"], ser_turns=ser_turn_options(hp) if behaviour else None,
        target_end=hp.get("target_end", "template"), kl_positions=kl_positions,
    )


def ser_turn_options(hp):
    """Step 2's SER question/answer items (``ser_turns``), or None: the paper trains none (a 7B LLM answers the
    SER question zero-shot); a small LLM cannot, so the mini recipe adds them for both speech systems alike."""
    if not hp.get("ser_turns"):
        return None
    if hp["response_loss"] != "ce":
        raise ValueError("ser_turns needs response_loss: ce (an SER answer has no text-LLM distribution to match)")
    return {"system_prompt": hp["ser_system_prompt"], "instruction": hp["ser_instruction"],
            "answer_template": hp["ser_answer_template"], "fraction": float(hp["ser_turn_fraction"]), "seed": 0}


def loader_options(dataset, hp, seed, train, batch_size):
    """DataLoader options: duration-bucketed dynamic batches (``max_batch_duration`` s per device) or fixed
    ``batch_size``. Returns ``(kwargs, sampler, num_batches)``; ``Brain.fit`` builds the loader (and wraps
    the batch sampler for DDP)."""
    generator = torch.Generator().manual_seed(seed)  # keeps the global RNG untouched (exact resume)
    kwargs = {"collate_fn": PaddedBatch, "num_workers": hp["num_workers"], "generator": generator}
    if hp["dynamic_batching"]:
        sampler = DynamicBatchSampler(
            dataset, max_batch_length=hp["max_batch_duration"], num_buckets=hp["num_buckets"],
            length_func=lambda x: x["duration"], shuffle=train, batch_ordering="random" if train else "descending",
            max_batch_ex=batch_size, seed=seed,
        )
        kwargs["batch_sampler"] = sampler
        return kwargs, sampler, len(sampler)
    kwargs.update(batch_size=batch_size, shuffle=train)
    return kwargs, None, -(-len(dataset) // batch_size)


def configure_step(model, step, hp):
    """What trains in each step (docs/method.md#training-steps, #trainable-modules)."""
    if step == "semantic":
        model.set_trainable(adapter=True, lora=False, emotion_head=False, avd_head=False)
    else:
        model.set_trainable(adapter=True, lora=True, emotion_head=hp["lambda_cat"] > 0 and hp["train_emotion_head"],
                            avd_head=hp["lambda_dim"] > 0)


FUSION_INITS = ("fresh", "expand")


def init_from_experiment(model, folder, fusion_init="fresh"):
    """Initialise from another experiment's ``final/`` (e.g. BLSP-Emo for RE-LLM and for its matched control).

    LoRA and heads are copied. The adapter follows ``fusion_init`` whatever the two adapters' shapes, so that RE-LLM
    and a control without the emotion nuance module (``blsp_emo_ft``, the ``emotion_dim=0`` ablation) start the
    same way and differ in one factor only (docs/method.md#fusion-adapter):

    - ``fresh`` (the released RE-LLM): a newly initialised adapter; the source adapter is unused;
    - ``expand``: the source adapter continues: copied when the shapes match, or, when this model also fuses an
      emotion embedding, widened function-preservingly so that every parameter trains (``SpeechAdapter.expand_from``).
    """
    if fusion_init not in FUSION_INITS:
        raise ValueError(f"fusion_init must be one of {', '.join(FUSION_INITS)}, got {fusion_init!r}")
    if not ExperimentDir(folder).has_final():
        raise FileNotFoundError(
            f"init_from={folder}: {ExperimentDir(folder).final} holds no trained model; train that model first (run.sh trains "
            "blsp_emo before rellm) or set --init_from=null to run the semantic step from scratch"
        )
    state, _ = load_final_state(folder)
    adapter_state = {k[len("adapter."):]: v for k, v in state.items() if k.startswith("adapter.")}
    own_adapter = model.adapter.state_dict()
    same_shape = adapter_state.keys() == own_adapter.keys() and all(
        adapter_state[k].shape == own_adapter[k].shape for k in own_adapter)
    if fusion_init == "fresh":
        copied, how = [], "not used: a fresh adapter (fusion_init=fresh, as released)"
    elif same_shape:
        copied, how = model.adapter.expand_from(adapter_state), "copied (fusion_init=expand)"
    else:
        copied, how = model.adapter.expand_from(adapter_state), "expanded (function-preserving, all channels train)"
    rest = {k: v for k, v in state.items() if not k.startswith("adapter.")}
    own = model.own_state_dict()
    usable = {k: v for k, v in rest.items() if k in own and own[k].shape == v.shape}
    model.load_own_state_dict(usable, strict=False)
    logger.info("initialised from %s: source adapter %s (%d tensors); LoRA/head tensors %d (ignored %s)", folder, how,
                len(copied), len(usable), sorted(set(rest) - set(usable))[:5])
    return how


def run_step(model, step, hp, run_opts, output_folder, base_models, layout, position=""):
    """Train one step with its own checkpointer; returns the epoch-level summary. ``position`` (``step 1/2``)
    goes into the progress lines the job runner shows."""
    n = 1 if step == "semantic" else 2
    epochs = hp[f"step{n}_epochs"]
    exp = ExperimentDir(output_folder)
    save_dir = exp.checkpoints(STEP_DIRS[step])
    *dirs, train_name, valid_name = step_data(hp, step)
    if step == "semantic" and not hp["step1_data_dir"]:
        logger.warning("step 1 (semantic) trains on the SER corpus's own transcripts (%s); BLSP-Emo ran it on a large "
                       "ASR corpus: set step1_data_dir/step1_feats_dir/step1_responses_dir (run.sh --step1_data)",
                       dirs[0])
    train_set, train_report = load_set(hp, train_name, step, layout, dirs)
    valid_set, valid_report = load_set(hp, valid_name, step, layout, dirs)
    if sb.utils.distributed.if_main_process():
        atomic_write_json(save_dir / "data_report.json", {
            "data_dir": str(dirs[0]), "train_set": train_name, "valid_set": valid_name,
            "train": train_report, "valid": valid_report})
    logger.info("step %s: %d train / %d valid utterances from %s", step, train_report["kept"], valid_report["kept"],
                dirs[0])
    configure_step(model, step, hp)
    batch_size = hp[f"step{n}_batch_size"]
    train_kwargs, train_sampler, batches = loader_options(train_set, hp, hp["seed"], True, batch_size)
    valid_kwargs, _, _ = loader_options(valid_set, hp, hp["seed"], False, batch_size)
    accum = hp[f"step{n}_grad_accumulation_factor"]
    world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    per_rank = -(-batches // world)
    total_steps = max(per_rank // accum, 1) * epochs
    warmup = hp[f"step{n}_warmup_steps"]
    if warmup >= total_steps:
        logger.warning("step %s: %d warm-up steps but only %d optimizer steps in total (small data set or large "
                       "effective batch); warming up over the first 10%% instead", step, warmup, total_steps)
        warmup = max(total_steps // 10, 1)
    schedule = WarmupDecayLR(hp[f"step{n}_lr"], warmup, total_steps, warmup_type=hp.get("warmup_type", "linear"))
    counter = EpochCounter(epochs)
    checkpointer = AtomicCheckpointer(save_dir, recoverables={
        "model": TrainableParameters(model, base_models), "counter": counter, "lr_schedule": schedule,
        "rng": RNGState(),
    })
    batch_desc = (f"dynamic batches of <= {hp['max_batch_duration']} s (<= {batch_size} utts)"
                  if hp["dynamic_batching"] else f"{batch_size} utterances")
    mean_batch = len(train_set) / max(batches, 1)
    logger.info("step %s: per-device batch = %s, %d device(s) x grad accumulation %d -> effective batch = %d x "
                "per-device batch (about %.1f utterances); %d batches/epoch, %d optimizer steps over %d epoch(s)",
                step, batch_desc, world, accum, world * accum, world * accum * mean_batch, batches, total_steps, epochs)
    brain_hparams = {
        "step": step, "step_name": STEP_DIRS[step], "response_loss": hp["response_loss"],
        "kd_temperature": hp["kd_temperature"], "lambda_cat": hp["lambda_cat"],
        "lambda_dim": hp["lambda_dim"], "dim_loss": hp["dim_loss"],
        "use_emotion": hp["emotion_dim"] > 0, "lr_schedule": schedule, "valid_set_size": valid_report["kept"],
        "optimizer": lambda params: torch.optim.AdamW(params, lr=hp[f"step{n}_lr"], betas=(0.9, 0.999), eps=1e-8,
                                                      weight_decay=hp["weight_decay"]),
        "train_logger": FileTrainLogger(exp.train_log),
        "max_grad_norm": hp["max_grad_norm"], "grad_accumulation_factor": accum,
        "ckpt_interval_minutes": hp["ckpt_interval_minutes"], "ckpt_interval_steps": hp["ckpt_interval_steps"],
        "noprogressbar": hp["noprogressbar"],
        "progress_position": f"{position} ({STEP_DIRS[step]})" if position else STEP_DIRS[step], "epochs": epochs,
        "curves": TrainingCurves(exp.root),
    }
    brain = AlignBrain(modules={"model": model}, hparams=brain_hparams, run_opts=run_opts, checkpointer=checkpointer)
    if train_sampler is not None and not brain.distributed_launch:
        brain.train_sampler = train_sampler  # so that fit() calls set_epoch: a new order every epoch
    try:
        brain.fit(counter, train_set, valid_set, train_loader_kwargs=train_kwargs, valid_loader_kwargs=valid_kwargs)
        # a resume must run only the steps that were missing, a fresh run all of them: the log says which happened
        logger.info("%s: %d optimizer step(s) in this run, %d in all", STEP_DIRS[step],
                    brain.optimizer_step - getattr(brain, "steps_at_start", 0), brain.optimizer_step)
    finally:
        brain_hparams["curves"].close()
    return brain


def speech_feature_options(cache_folder):
    """What made the training features, from the cache's ``features.json``: the Whisper model and window."""
    meta = read_feature_meta(cache_folder)
    return {"whisper": meta.get("whisper"), "whisper_window_seconds": meta.get("whisper_window_seconds", 30.0)}


def train_two_steps(hp, run_opts):
    """Run both steps and write ``final/``. ``hp`` is the loaded config (a dict)."""
    model = hp["model"]
    if hp.get("compile_decoder_layers"):  # GPU speed option (bench/run_gpu_benchmarks.sh); off in every recipe
        from rellm.models.compile_layers import compile_decoder_layers

        logger.info("torch.compile: %d decoder layers", compile_decoder_layers(model))
    exp = ExperimentDir(hp["output_folder"])
    base_models = {"llm": model.llm_name, "speech_encoder": hp["speech_encoder"],
                   "emotion_encoder": hp["emotion_encoder"] if hp["emotion_dim"] > 0 else None}
    steps = list(STEPS)
    if hp["init_from"]:
        step2_dir = exp.checkpoints(STEP_DIRS["behaviour"])
        if not any(step2_dir.glob("CKPT+*")):
            init_from_experiment(model, hp["init_from"], hp["fusion_init"])
        steps = ["behaviour"]  # the source model already went through the semantic step
        logger.info("init_from=%s: skipping the semantic step", hp["init_from"])
    elif hp["step1_epochs"] <= 0:
        steps = ["behaviour"]
    if "semantic" in steps and hp.get("step1_ctc_epochs", 0) > 0:
        data_dir, feats_dir, _, train_name, _ = step_data(hp, "semantic")
        run_ctc_warmup(model, hp, exp, read_manifest(Path(data_dir) / f"{train_name}.json"),
                       open_feature_cache(Path(feats_dir) / train_name), FileTrainLogger(exp.train_log),
                       write=sb.utils.distributed.if_main_process())
    for k, step in enumerate(steps, 1):
        run_step(model, step, hp, run_opts, exp.root, base_models, model.layout, position=f"step {k}/{len(steps)}")
    if sb.utils.distributed.if_main_process():
        model.save_final(exp.final, extra={
            "base_models": base_models,
            "prompts": {"system_prompt": hp["system_prompt"], "system_prompt_empathetic": hp["system_prompt_empathetic"],
                        "behaviour_instruction": hp["behaviour_instruction"]},
            "steps": steps,
            # how stage 2 made the speech features (encoder, window): a reader of raw audio must do the same
            "speech_features": speech_feature_options(Path(hp["feats_dir"]) / hp["train_set"]),
            # what configure_step trained: readers need not re-derive it from the config
            "avd_head_trained": bool(hp["lambda_dim"] > 0),
        })
        logger.info("final model written to %s", exp.final)
    sb.utils.distributed.ddp_barrier()
    return model
