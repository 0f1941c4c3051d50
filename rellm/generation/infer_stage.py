"""Stage 5 as the recipe runs it (``rellm.bin.infer``): the system's checks, the options and inputs a shard and the
merge are fingerprinted with, and the shard / merge calls of ``rellm.generation.inference``."""
from pathlib import Path

from rellm import systems as registry
from rellm.data.manifest import read_manifest
from rellm.generation import inference as I
from rellm.generation.runtime import decoding_fingerprint
from rellm.utils.config import ConfigError
from rellm.utils.sharded_stage import ShardedStage


def check(hp):
    if hp["system"] not in registry.names():
        raise ConfigError(f"--system must be one of {', '.join(registry.names())}, got {hp['system']!r} "
                          "(a new system is one line in rellm/systems.py)")
    if not Path(hp["manifest"]).is_file():
        raise FileNotFoundError(f"manifest {hp['manifest']} does not exist; run stage 1 first")


def prompts(hp):
    return {
        "response_system_prompt": hp["response_system_prompt"],
        "response_instruction": hp["response_instruction"],
        "response_max_new_tokens": int(hp["response_max_new_tokens"]),
        "ser_system_prompt": hp["ser_system_prompt"],
        "ser_instruction": hp["ser_instruction"],
        "ser_max_new_tokens": int(hp["ser_max_new_tokens"]),
    }


def options(hp):
    opts = {
        "system": hp["system"],
        "manifest": str(Path(hp["manifest"]).resolve()),
        "num_shards": hp["num_shards"],
        "batch_size": hp["batch_size"],
        "batch_seed": hp["batch_seed"],
        "dtype": str(hp["dtype"]),
        "min_new_tokens": hp["min_new_tokens"],
        **prompts(hp),
        # repetition penalty / sampling, only when set (plain greedy configs keep their fingerprint)
        **decoding_fingerprint(hp, "reply"),
    }
    if I.hears_text(hp["system"]):
        opts["text_llm"] = str(hp["text_llm"])
    else:
        opts["model_dir"] = str(Path(hp["model_dir"]).resolve())
        opts["feats_dir"] = str(Path(hp["feats_dir"]).resolve())
    return opts


def inputs_of(hp):
    """What the answers are made from (``rellm.utils.lineage``): the manifest's content, and the model: the text
    LLM's files, or the trained (or imported) experiment through its stage-4 marker plus the test set's features
    through stage 2's; a retrained model or re-extracted features make the answers stale."""
    from rellm.pretrained.identity import add_model
    from rellm.utils.lineage import FEATURES_MARKER, Inputs, done_marker_of, stage_output

    inputs = Inputs().file("manifest", hp["manifest"])
    if I.hears_text(hp["system"]):
        return add_model(inputs, "text_llm", hp["text_llm"])
    marker = done_marker_of(hp["model_dir"])
    if marker is not None:
        inputs.marker("model", marker)
    else:  # a model folder made by hand (no stage-4 marker): its final/ files
        from rellm.utils.experiment_dir import ExperimentDir

        inputs.folder("model", ExperimentDir(hp["model_dir"]).final)
    return stage_output(inputs, "features", hp["feats_dir"], FEATURES_MARKER, "index.jsonl")


def run_stage(hp):
    """Stage 5 for the config ``hp``: one shard (``shard``) or the merge (``merge``)."""
    check(hp)
    out = Path(hp["output_dir"])
    stage = ShardedStage("infer", out, hp["num_shards"], stage="5")
    # one process per shard (and per merge) at a time, taken before its log is opened
    with stage.running(hp):
        return _run(hp, out, stage)


def _run(hp, out, stage):
    manifest = read_manifest(hp["manifest"])
    opts, inputs = options(hp), inputs_of(hp)
    if hp["merge"]:
        return stage.merge(opts, opts, lambda: I.merge_answers(stage, manifest, hp, prompts(hp)),
                           overwrite=hp["overwrite"], inputs=inputs)
    return stage.run_shard(int(hp["shard"]), opts,
                           lambda: I.answer_shard(stage, int(hp["shard"]), manifest, hp, prompts(hp)),
                           overwrite=hp["overwrite"], inputs=inputs)
