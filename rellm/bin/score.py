"""Stage 6: score the systems' responses and SER answers on one test set.

    python -m rellm.bin.score conf/score.yaml --systems "text_only blsp_emo rellm" --exp_root exp \\
        --split S --seed N --test_set T --output_dir exp/scores/<split>/seed<seed>/<test_set>

Reads ``<exp_root>/<system>/<split>/seed<seed>/infer/<test_set>/responses.jsonl`` per system
and writes into ``output_dir``: ``metrics.json`` (per system: mean EPITOME levels and level
distributions, SER UA/WA/macro-F1/confusion, empathy by SER correctness, per-emotion
breakdowns, response-emotion UA and repeated responses; RE-LLM against each baseline: Wilcoxon,
paired bootstrap CI, McNemar), ``per_utt.jsonl`` and PNG plots. A system without outputs is
reported as missing. The EPITOME classifiers come from the cache that ``rellm.bin.epitome train`` fills.

Response emotion (our addition, ``rellm.scoring.response_emotion``): a TF-IDF + logistic-regression
classifier trained on the teacher's expected responses of ``<responses_dir>/<train_set>/expected.jsonl``
reads the emotion back from each response; the teacher's own expected responses for the test set
(``<responses_dir>/<test_set>/expected.jsonl``, stage 3) are scored as a reference row when present.
Response words (our addition, ``rellm.scoring.response_words``): the share of the transcript's content words
each response repeats, against its chance level (the other test sentences' words).

The teacher's expected responses are scored like a system (EPITOME levels too): the ceiling row. ``test_overlap``
names the systems whose checkpoint, or the checkpoint they were initialised from, was trained on this test set
(``rellm.scoring.training_data``; ``{}`` when none). A figure that cannot be computed (no SER answers, no words to
train the response-emotion classifier on, one emotion only, a figure that fails to draw) is reported as n/a with
its reason in ``metrics.json`` (``systems.<s>.not_available``, ``response_emotion.missing``, ``figures``), never
fatal.

``--tag NAME`` (an ablation, ``exp/NAME/``): each system's outputs are read from
``<exp_root>/NAME/<system>/<split>/seed<seed>/`` when that run has them, else from the main run's folder (a
baseline the ablation did not re-run; ``sources`` in metrics.json says which), and the scores go to
``<exp_root>/NAME/scores/<split>/seed<seed>/<test_set>`` (never over the main run's).
"""
from rellm.scoring.stage import run_stage
from rellm.utils.config import load_config, parse_stage_args, run_main


def main(argv=None):
    config, overrides = parse_stage_args(argv, description=__doc__)
    return run_stage(load_config(config, overrides))


if __name__ == "__main__":
    run_main(main)
