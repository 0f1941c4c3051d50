"""Stage 5: empathetic responses and SER answers of one system on one test set.

    python -m rellm.bin.infer conf/infer.yaml --system {text_only,blsp_emo,rellm} \\
        --model_dir exp/<system>/<split>/seed<seed> --manifest data/<split>/<set>.json \\
        --feats_dir dump/<split>/<set> --output_dir <model_dir>/infer/<set> --shard J --num_shards N
    python -m rellm.bin.infer conf/infer.yaml ... --merge true --num_shards N

Writes ``shards/responses.JofN.jsonl`` per job and, on merge, ``responses.jsonl`` (records
``{utt_id, transcript, emotion, response, ser_output, ser_pred}``) plus ``report.json``
(answered and unanswered utterances by reason: ``rellm.utils.drop_report``; the SER parse outcome per label).
The shard/marker/merge skeleton is ``rellm.utils.sharded_stage``; the work is ``rellm.generation.inference``.
"""
from pathlib import Path

from rellm.data.manifest import read_manifest
from rellm.generation import inference as I
from rellm.generation.runtime import decoding_fingerprint
from rellm.utils.config import ConfigError, load_config, parse_stage_args, run_main
from rellm.utils.logging import setup_logging
from rellm.utils.sharded_stage import ShardedStage


def _check(hp):
    if hp["system"] not in I.SYSTEMS:
        raise ConfigError(f"--system must be one of {', '.join(I.SYSTEMS)}, got {hp['system']!r}")
    if not Path(hp["manifest"]).is_file():
        raise FileNotFoundError(f"manifest {hp['manifest']} does not exist; run stage 1 first")


def _prompts(hp):
    return {
        "response_system_prompt": hp["response_system_prompt"],
        "response_instruction": hp["response_instruction"],
        "response_max_new_tokens": int(hp["response_max_new_tokens"]),
        "ser_system_prompt": hp["ser_system_prompt"],
        "ser_instruction": hp["ser_instruction"],
        "ser_max_new_tokens": int(hp["ser_max_new_tokens"]),
    }


def _options(hp):
    opts = {
        "system": hp["system"],
        "manifest": str(Path(hp["manifest"]).resolve()),
        "num_shards": hp["num_shards"],
        "batch_size": hp["batch_size"],
        "batch_seed": hp["batch_seed"],
        "dtype": str(hp["dtype"]),
        "min_new_tokens": hp["min_new_tokens"],
        **_prompts(hp),
        # repetition penalty / sampling, only when set (plain greedy configs keep their fingerprint)
        **decoding_fingerprint(hp, "reply"),
    }
    if hp["system"] == "text_only":
        opts["text_llm"] = str(hp["text_llm"])
    else:
        opts["model_dir"] = str(Path(hp["model_dir"]).resolve())
        opts["feats_dir"] = str(Path(hp["feats_dir"]).resolve())
    return opts


def _inputs(hp):
    """What the answers are made from (``rellm.utils.lineage``): the manifest's content, and the model: the text
    LLM's files, or the trained (or imported) experiment through its stage-4 marker plus the test set's features
    through stage 2's; a retrained model or re-extracted features make the answers stale."""
    from rellm.utils.lineage import FEATURES_MARKER, Inputs, done_marker_of, stage_output

    inputs = Inputs().file("manifest", hp["manifest"])
    if hp["system"] == "text_only":
        return inputs.model("text_llm", hp["text_llm"])
    marker = done_marker_of(hp["model_dir"])
    if marker is not None:
        inputs.marker("model", marker)
    else:  # a model folder made by hand (no stage-4 marker): its final/ files
        from rellm.training.experiment_dir import ExperimentDir

        inputs.folder("model", ExperimentDir(hp["model_dir"]).final)
    return stage_output(inputs, "features", hp["feats_dir"], FEATURES_MARKER, "index.jsonl")


def main(argv=None):
    config, overrides = parse_stage_args(argv, description=__doc__)
    hp = load_config(config, overrides)
    _check(hp)
    out = Path(hp["output_dir"])
    stage = ShardedStage("infer", out, hp["num_shards"], stage="5")
    # one process per shard (and per merge) at a time, taken before its log is opened
    with stage.locked(None if hp["merge"] else int(hp["shard"])):
        return _run(hp, out, stage)


def _run(hp, out, stage):
    what = "merge" if hp["merge"] else f"infer.{hp['shard']}of{hp['num_shards']}"
    setup_logging(out / "log" / f"{what}.log")
    manifest = read_manifest(hp["manifest"])
    options, inputs = _options(hp), _inputs(hp)
    if hp["merge"]:
        return stage.merge(options, options, lambda: I.merge_answers(stage, manifest, hp, _prompts(hp)),
                           overwrite=hp["overwrite"], inputs=inputs)
    return stage.run_shard(int(hp["shard"]), options,
                           lambda: I.answer_shard(stage, int(hp["shard"]), manifest, hp, _prompts(hp)),
                           overwrite=hp["overwrite"], inputs=inputs)


if __name__ == "__main__":
    run_main(main)
