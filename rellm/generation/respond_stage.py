"""Stage 3 as the recipe runs it (``rellm.bin.respond``): the teacher tasks of the config, the options and inputs
a shard and the merge are fingerprinted with, and the shard / merge calls of ``rellm.generation.teacher``."""
from pathlib import Path

from rellm.data.manifest import read_manifest
from rellm.generation import teacher as T
from rellm.generation.runtime import options_fingerprint_base
from rellm.pretrained.identity import add_model
from rellm.utils.config import ConfigError
from rellm.utils.lineage import Inputs
from rellm.utils.sharded_stage import ShardedStage
from rellm.utils.stage import OptionsChangedError


def teacher_tasks(hp):
    tasks = []
    for name in hp["tasks"]:
        if name not in T.TASKS:
            raise ConfigError(f"unknown task {name!r} in tasks; choose from {', '.join(T.TASKS)}")
        try:
            tasks.append(
                T.TeacherTask(
                    name,
                    hp[f"{name}_system_prompt"],
                    hp[f"{name}_template"],
                    dict(hp.get("emotion_words") or {}),
                    openings={k: list(v) for k, v in (hp.get(f"{name}_openings") or {}).items()},
                    opening_seed=int(hp.get("opening_seed", 0)),
                )
            )
        except ValueError as err:
            raise ConfigError(str(err)) from None
    if not tasks:
        raise ConfigError("tasks is empty; nothing to generate")
    return tasks


def options(hp, tasks):
    """Everything that changes the generated text (the shard/merge fingerprint)."""
    return {
        **options_fingerprint_base(hp, "teacher_llm"),
        "manifest": str(Path(hp["manifest"]).resolve()),
        "num_shards": hp["num_shards"],
        "batch_size": hp["batch_size"],
        "max_new_tokens": hp["max_new_tokens"],
        "tasks": [(t.name, t.system_prompt, t.template, sorted(t.emotion_words.items())) for t in tasks],
        # only when used, so that configs without openings keep their fingerprint (and finished outputs)
        **({"openings": [(t.name, sorted(t.openings.items()), t.opening_seed) for t in tasks if t.openings]}
           if any(t.openings for t in tasks) else {}),
    }


def merge_options(hp, tasks):
    """The shards' options plus what the merge's cleaning does."""
    merged = {**options(hp, tasks), "extra_drop_substrings": list(hp["extra_drop_substrings"] or [])}
    if hp.get("tidy_replies"):  # only when used: configs without it keep their fingerprint
        merged["tidy_replies"] = True
    return merged


def run_stage(hp):
    """Stage 3 for the config ``hp``: one shard (``shard``) or the merge (``merge``)."""
    out = Path(hp["output_dir"])
    stage = ShardedStage("respond", out, hp["num_shards"], stage="3")
    # one process per shard (and per merge) at a time, taken before its log is opened
    with stage.running(hp):
        return _run(hp, out, stage)


def _run(hp, out, stage):
    tasks = teacher_tasks(hp)
    if not Path(hp["manifest"]).is_file():
        raise FileNotFoundError(f"manifest {hp['manifest']} does not exist; run stage 1 first")
    manifest = read_manifest(hp["manifest"])
    stale = T.responses_for_other_transcripts(out, manifest)  # --overwrite reruns only for other options
    if stale:
        path, utt_id, before, now = stale[0]
        raise OptionsChangedError(
            f"{out} holds {len(stale)} response(s) written for other transcripts than {hp['manifest']} has now "
            f"(e.g. {utt_id} in {path.relative_to(out)}: {before!r}; the manifest says {now!r}): stage 1 was "
            f"re-run with other data. Delete {out} and run stage 3 again to write them for the new data.")
    # what the responses are made from: the manifest's content and the teacher LLM's files
    inputs = add_model(Inputs().file("manifest", hp["manifest"]), "teacher_llm", hp["teacher_llm"])
    if hp["merge"]:
        def merge():
            tasks_report = T.merge_responses(stage, tasks, manifest, hp["extra_drop_substrings"],
                                             bool(hp.get("tidy_replies")))
            return {"manifest": str(hp["manifest"]), "teacher_llm": str(hp["teacher_llm"]), "tasks": tasks_report}

        return stage.merge(merge_options(hp, tasks), options(hp, tasks), merge, overwrite=hp["overwrite"],
                           inputs=inputs)
    return stage.run_shard(int(hp["shard"]), options(hp, tasks),
                           lambda: T.generate_shard(stage, int(hp["shard"]), tasks, manifest, hp),
                           overwrite=hp["overwrite"], inputs=inputs)

