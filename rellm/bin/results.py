"""Stage 6: write the recipe's RESULTS.md from every scored run.

    python -m rellm.bin.results conf/score.yaml --corpus C --split S --seed N --test_sets "test ..." \\
        --exp_root exp --output RESULTS.md --command "./run.sh ..." [--tag NAME]

Every (split, seed) scored under ``<exp_root>/scores/<split>/seed<k>/<test set>/`` (``rellm.bin.score``) gets its
own section: the environment, the protocol, the exact command, the paper-style table per test set (every scored
system x ER, IP, EX, UA, WA and our additions, the teacher's expected responses as the ceiling row) with RE-LLM's
relative changes and significance marks, what is n/a and why, the systems trained on the test set (†/‡), the
paper's published figures beside ours, example responses and the plots (copied under ``results_figures/``). With
more than one run (seeds, IEMOCAP folds) a summary comes first: mean ± sd and n per system and figure, the runs
whose test set overlaps a system's training data and the summary without them, significance on the pooled
per-utterance pairs (``rellm.scoring.summary``); it is also written to ``<scores root>/summary.json``
(``{test set: {system: {metric: {mean, sd, n}}}}``) and ``pooled_comparisons.json``. ``--split``/``--seed`` name
the run stage 6 was called for: listed even when unscored, and the one whose models and commands are shown.

``--tag NAME`` (an ablation): reads ``<exp_root>/NAME/scores/`` and writes ``RESULTS_NAME.md`` beside ``--output``
(figures under ``results_figures_NAME/``): never over the main results. ``--scores_dir`` (one run's folder, the
older interface) is read as ``<scores root>/<split>/seed<k>`` when no tag is given.
"""
from rellm.recipes.results import write_results
from rellm.utils.config import parse_stage_args, run_main


def main(argv=None):
    return write_results(*parse_stage_args(argv, description=__doc__))


if __name__ == "__main__":
    run_main(main)
