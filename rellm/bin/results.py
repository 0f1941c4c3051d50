"""Stage 6: write the recipe's RESULTS.md from the scored test sets.

    python -m rellm.bin.results conf/score.yaml --corpus C --split S --seed N --test_sets "test ..." \\
        --scores_dir exp/scores/<split>/seed<seed> --output RESULTS.md --command "./run.sh ..."

RESULTS.md holds an environment block, the protocol, the exact command, the paper-style
table per test set (text-only LLM, BLSP-Emo, RE-LLM x ER, IP, EX, UA, WA) with RE-LLM's
relative changes and significance marks, the response-emotion UA and repeated responses
(our additions, with the teacher's expected responses as a reference row), example responses
in all five emotions, the paper's published figures for the real corpora, and the plots (copied beside RESULTS.md under ``results_figures/``).
"""
import logging
from pathlib import Path

from rellm.utils.config import ConfigError, as_list, load_config, parse_stage_args, run_main
from rellm.utils.io import atomic_write_text, read_json
from rellm.utils.logging import setup_logging

logger = logging.getLogger("rellm.bin.results")


def main(argv=None):
    from rellm.scoring.results_table import render_results

    config, overrides = parse_stage_args(argv, description=__doc__)
    # The command line is quoted text: keep it verbatim rather than parsing it as YAML.
    command = overrides.pop("command", None)
    # run.sh --dry_run true: the title says so (a dry-run table must never pass for a paper-scale one)
    dry_run = str(overrides.pop("dry_run", "false")).strip().lower() == "true"
    dump_dir = overrides.pop("dump_dir", None)  # run.sh: dump/<split>, for the models section
    hp = load_config(config, overrides)
    command = command if command is not None else str(hp["command"] or "")
    test_sets = as_list(hp["test_sets"])
    if not test_sets:
        raise ConfigError("--test_sets is empty; name the scored test sets, e.g. \"test\"")
    scores_dir = Path(hp["scores_dir"]) if hp["scores_dir"] else \
        Path(hp["exp_root"]) / "scores" / str(hp["split"]) / f"seed{hp['seed']}"
    setup_logging()
    epitome_metrics = None
    for test_set in test_sets:
        path = scores_dir / test_set / "metrics.json"
        if path.is_file():
            epitome_metrics = read_json(path).get("epitome", {}).get("test_metrics")
            break
        logger.warning("no scores for %s (%s missing): RESULTS.md says so", test_set, path)
    mechanisms = as_list(hp["mechanisms"])
    text = render_results(
        corpus=str(hp["corpus"]), split=str(hp["split"]), seed=hp["seed"], test_sets=test_sets,
        scores_dir=scores_dir, output=hp["output"], command=command or "(not given)", mechanisms=mechanisms,
        notes=as_list_of_lines(hp["notes"]), epitome_metrics=epitome_metrics,
        example_max_chars=int(hp["example_max_chars"]), repeated_max_share=hp["repeated_max_share"])
    from rellm.recipes.provenance import markdown
    from rellm.utils.stage import python_command, recipe_command

    section = markdown(hp["exp_root"], dump_dir or f"dump/{hp['split']}", hp["split"], hp["seed"],
                       train_set=str(hp["train_set"]), data=hp["data_dir"] or None,
                       final=[(recipe_command(), python_command())] if python_command() else ())
    text = text.replace("## Command\n", section + "\n## Command\n", 1) if "## Command\n" in text else text + section
    if dry_run:
        text = mark_dry_run(text)
    atomic_write_text(hp["output"], text)
    logger.info("wrote %s", hp["output"])
    return Path(hp["output"])


def mark_dry_run(text):
    """The RESULTS text titled as a dry run, with a warning under the title."""
    first, _, rest = text.partition("\n")
    title = first.replace("# RESULTS:", "# DRY RUN RESULTS (not paper results):", 1)
    return (f"{title}\n\n> **Dry run** (`./run.sh --dry_run true`): small offline models, tiny subsets and epochs, "
            "CPU. These figures only show that the recipe runs end to end.\n" + rest)


def as_list_of_lines(value):
    if not value:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


if __name__ == "__main__":
    run_main(main)
