"""Stage 6's RESULTS.md as the recipe writes it (``rellm.bin.results``): every scored run found under the scores
root, their summary and pooled comparisons (``rellm.scoring.summary``), the tables (``rellm.scoring.results_table``),
and this run's models and commands (``rellm.recipes.provenance``); a dry run's title says so.
"""
import logging
from pathlib import Path

from rellm.utils.config import ConfigError, as_list, load_config
from rellm.utils.io import atomic_write_json, atomic_write_text
from rellm.utils.logging import setup_logging

logger = logging.getLogger("rellm.recipes.results")


def results_root(hp, tag):
    """Where the scored runs are: ``<exp_root>/scores`` (``<exp_root>/<tag>/scores`` for an ablation)."""
    from rellm.scoring.summary import scores_root

    if hp["scores_dir"] and not tag:
        return Path(hp["scores_dir"]).parent.parent
    return scores_root(hp["exp_root"], tag)


def tagged_output(output, tag):
    """``RESULTS.md`` -> ``RESULTS_<tag>.md``: an ablation never overwrites the main results."""
    output = Path(output)
    return output.with_name(f"{output.stem}_{tag}{output.suffix}") if tag else output


def write_results(config, overrides):
    """RESULTS.md (RESULTS_<tag>.md) from every scored run, for the config ``config`` with ``overrides``; returns
    its path."""
    from rellm.scoring.results_table import render_results
    from rellm.scoring.summary import discover_runs, load_runs, pooled_comparisons, summary_json

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
    tag = str(hp["tag"] or "")
    root = results_root(hp, tag)
    setup_logging()
    current = (str(hp["split"]), int(hp["seed"]))
    runs = sorted(set(discover_runs(root, test_sets)) | {current})
    runs_metrics = load_runs(root, runs, test_sets)
    for test_set in test_sets:
        if test_set not in runs_metrics[current]:
            logger.warning("no scores for %s of %s seed%s (%s missing): RESULTS.md says so", test_set, *current,
                           root / current[0] / f"seed{current[1]}" / test_set / "metrics.json")
    scored = [m for run in [current, *runs] for m in runs_metrics[run].values()]
    epitome_metrics = next((m.get("epitome", {}).get("test_metrics") for m in scored), None)
    mechanisms = as_list(hp["mechanisms"])
    pooled = {}
    if len(runs) > 1:
        pooled = {t: pooled_comparisons(root, runs_metrics, t, mechanisms, n_resamples=int(hp["bootstrap_resamples"]),
                                        seed=int(hp["bootstrap_seed"])) for t in test_sets}
        atomic_write_json(root / "pooled_comparisons.json", pooled)
    if scored:
        atomic_write_json(root / "summary.json", summary_json(runs_metrics, test_sets, mechanisms))
    output = tagged_output(hp["output"], tag)
    text = render_results(
        corpus=str(hp["corpus"]), runs=runs, test_sets=test_sets, scores_root=root, output=output,
        command=command or "(not given)", mechanisms=mechanisms, runs_metrics=runs_metrics,
        notes=as_list_of_lines(hp["notes"]), epitome_metrics=epitome_metrics,
        example_max_chars=int(hp["example_max_chars"]), repeated_max_share=hp["repeated_max_share"], tag=tag,
        pooled=pooled)
    from rellm.recipes.provenance import markdown
    from rellm.utils.stage import python_command, recipe_command

    exp = Path(hp["exp_root"]) / tag if tag and (Path(hp["exp_root"]) / tag).is_dir() else hp["exp_root"]
    section = markdown(exp, dump_dir or f"dump/{hp['split']}", hp["split"], hp["seed"],
                       train_set=str(hp["train_set"]), data=hp["data_dir"] or None,
                       final=[(recipe_command(), python_command())] if python_command() else (),
                       results_dir=Path(output).parent)
    text = text.replace("## Command\n", section + "\n## Command\n", 1) if "## Command\n" in text else text + section
    if dry_run:
        text = mark_dry_run(text)
    atomic_write_text(output, text)
    logger.info("wrote %s (%d scored run(s))", output, len(runs))
    return output


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

