"""Stage 6 scoring as the recipe runs it (``rellm.bin.score``): one test set's inputs (each system's stage-5 answers,
the teacher's expected responses), the fingerprint and lineage of the scores, the EPITOME levels, the per-system
figures and paired tests (``rellm.scoring.system_scores``), what hears the emotion for reference, the figures and
the outputs ``metrics.json`` and ``per_utt.jsonl``.
"""
import logging
from pathlib import Path

from rellm.utils.config import ConfigError, as_list, load_config
from rellm.utils.io import atomic_write_json, write_jsonl
from rellm.utils.lineage import ANSWERS_MARKER, RESPONSES_MARKER, Inputs, stage_output
from rellm.utils.logging import setup_logging
from rellm.utils.stage import DoneMarker, fingerprint

logger = logging.getLogger("rellm.scoring.stage")


def default_output_dir(hp):
    from rellm.scoring.summary import scores_root

    return scores_root(hp["exp_root"], hp["tag"]) / str(hp["split"]) / f"seed{hp['seed']}" / str(hp["test_set"])


def default_responses_dir(hp):
    """Stage 3's folder: the tagged run's when it has one, else the main run's."""
    if hp["tag"]:
        tagged = Path(hp["exp_root"]) / str(hp["tag"]) / "responses" / str(hp["split"])
        if tagged.is_dir():
            return tagged
    return Path(hp["exp_root"]) / "responses" / str(hp["split"])


def emotion_perception(hp):
    """What hears the emotion, for reference: the stage-2a encoder's validation figures (when the recipe trained
    one) and, with ``prosody_baseline``, a logistic regression on prosody statistics (``rellm.scoring.prosody_baseline``)
    fitted on the train set and scored on the valid and test sets."""
    from rellm.data.manifest import read_data_root, read_manifest
    from rellm.utils.io import read_json

    section = {}
    encoder_metrics = Path(hp["exp_root"]) / "emotion_encoder" / str(hp["split"]) / "metrics.json"
    if encoder_metrics.is_file():
        summary = read_json(encoder_metrics)
        section["emotion_encoder"] = {"valid": summary["valid"], "best_epoch": summary["best_epoch"],
                                      "folder": str(encoder_metrics.parent)}
    if hp["prosody_baseline"]:
        from rellm.scoring.prosody_baseline import prosody_baseline

        data_dir = Path(hp["data_dir"]) if hp["data_dir"] else Path("data") / str(hp["split"])
        root = read_data_root(data_dir) if (data_dir / "data_root.txt").is_file() else None
        sets = {name: read_manifest(data_dir / f"{name}.json", root)
                for name in dict.fromkeys([hp["train_set"], hp["valid_set"], str(hp["test_set"])])
                if (data_dir / f"{name}.json").is_file()}
        if hp["train_set"] not in sets:  # said in RESULTS.md, not fatal: the systems' scores do not need it
            missing = data_dir / f"{hp['train_set']}.json"
            logger.warning("prosody baseline not computed: %s does not exist (set --data_dir)", missing)
            section["prosody_baseline"] = {"missing": f"{missing} does not exist"}
        else:
            train = sets.pop(hp["train_set"])
            try:
                section["prosody_baseline"] = prosody_baseline(train, sets)
            except ValueError as err:  # e.g. one emotion in the train set: n/a, said in RESULTS.md
                logger.warning("prosody baseline not computed: %s", err)
                section["prosody_baseline"] = {"missing": str(err)}
    return section


def draw_figures(plots, metrics, mechanisms, output_dir):
    """``{figure: path or "n/a: why"}``: a figure that fails to draw is reported, never fatal."""
    figures = {}
    for name, draw in plots.FIGURES.items():
        try:
            path = draw(metrics, mechanisms, Path(output_dir) / f"{name}.png")
        except Exception as err:  # noqa: BLE001 (any plotting failure is one missing figure, not a failed stage)
            logger.warning("figure %s not drawn: %s: %s", name, type(err).__name__, err)
            figures[name] = f"n/a: {type(err).__name__}: {err}"
            continue
        figures[name] = str(path) if path else "n/a: no system has the figures it shows"
    return figures


def load_epitome_config(path):
    """The recipe's EPITOME config (it names the encoder, hence the cached models)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"epitome_config {path} does not exist; point --epitome_config at conf/epitome.yaml")
    return load_config(path)


def run_stage(hp):
    """Stage 6 scoring of one test set for the config ``hp``; returns the output folder. One process at a time
    writes a scores folder (its lock is taken before the log is opened)."""
    from rellm.utils.lock import OutputLock

    systems = as_list(hp["systems"])
    if not systems:
        raise ConfigError("--systems is empty; name the systems to score, e.g. \"text_only blsp_emo rellm\"")
    output_dir = Path(hp["output_dir"]) if hp["output_dir"] else default_output_dir(hp)
    with OutputLock(output_dir, "score", what=f"the scores folder {output_dir}"):
        return _score(hp, systems, output_dir)


def _score(hp, systems, output_dir):
    from rellm.scoring.epitome.data import sha256_file
    from rellm.scoring.epitome.model_cache import load_metrics, model_root
    from rellm.scoring.metric_registry import metrics as registered_metrics
    from rellm.scoring.response_emotion import classifier_from_config, example_responses, expected_path, score_responses
    from rellm.scoring.system_scores import (
        experiment_dir,
        load_system_outputs,
        per_utterance_records,
        reference_metrics,
        responses_path,
        score_empathy,
        score_test_set,
    )
    from rellm.scoring.training_data import overlap_section

    setup_logging(output_dir / "score.log")

    # 1. inputs: each system's stage-5 outputs (missing ones are reported, not fatal)
    exp_root, split, seed, test_set, tag = hp["exp_root"], str(hp["split"]), hp["seed"], str(hp["test_set"]), \
        str(hp["tag"] or "")
    outputs, missing = load_system_outputs(exp_root, systems, split, seed, test_set, tag=tag)
    if not outputs:
        raise FileNotFoundError(
            f"no system has outputs for test set {hp['test_set']}: " + "; ".join(missing.values()))
    sources = {s: str(responses_path(exp_root, s, split, seed, test_set, tag)) for s in outputs}
    # whose checkpoint (or the checkpoint it started from) was trained on these test utterances
    test_overlap, training_data = overlap_section(
        {s: experiment_dir(exp_root, s, split, seed, tag, test_set) for s in outputs}, str(hp["corpus"] or ""),
        set().union(*(set(r) for r in outputs.values())), test_set, exp_root)
    for system, why in test_overlap.items():
        logger.warning("test overlap: %s: %s", system, why)

    # the teacher's expected responses: training data of the response-emotion classifier, reference row
    responses_dir = Path(hp["responses_dir"]) if hp["responses_dir"] else default_responses_dir(hp)
    train_expected = expected_path(responses_dir, hp["train_set"])
    teacher_expected = expected_path(responses_dir, hp["test_set"])
    classifier = classifier_from_config(hp)

    # 2. skip when already scored from the same inputs, classifiers and settings
    epitome_hp = load_epitome_config(hp["epitome_config"])
    root = model_root(epitome_hp)
    mechanisms = as_list(epitome_hp["mechanisms"])
    classifier_markers = {m: (root / m / ".done.train") for m in mechanisms}
    options = {
        "systems": systems, "reference_system": hp["reference_system"],
        "inputs": {s: sha256_file(sources[s]) for s in outputs}, "tag": tag,
        "missing": sorted(missing),
        "classifiers": {m: fingerprint({"marker": p.read_text()}) if p.is_file() else None
                        for m, p in classifier_markers.items()},
        "bootstrap_resamples": hp["bootstrap_resamples"], "bootstrap_seed": hp["bootstrap_seed"],
        "response_emotion": {
            "train": sha256_file(train_expected) if train_expected.is_file() else None,
            "teacher": sha256_file(teacher_expected) if teacher_expected.is_file() else None,
            "classifier": classifier.options, "cv_folds": hp["response_classifier_cv_folds"],
            "example_sentences": hp["example_sentences"]},
        "prosody_baseline": bool(hp["prosody_baseline"]),
        # scores made before a metric existed (or with other settings: another word list) are not reused
        **{metric.name: fingerprint(metric.settings) for metric in registered_metrics()},
        # ... nor those made before the overlap check and the teacher's EPITOME row, or with other training-data facts
        "test_overlap": test_overlap, "teacher_row": "epitome",
    }
    # lineage: each system's stage-5 answers and the teacher's responses, through their markers; a model retrained
    # on other responses (or answers of a model since retrained) stops the scoring instead of mixing in RESULTS.md
    inputs = Inputs()
    for s in outputs:
        stage_output(inputs, f"answers_{s}", Path(sources[s]).parent, ANSWERS_MARKER, Path(sources[s]).name)
    for role, path in (("train", train_expected), ("test", teacher_expected)):
        if path.is_file():
            stage_output(inputs, f"responses_{role}", path.parent, RESPONSES_MARKER, path.name)
    marker = DoneMarker(output_dir, "score", hint="pass --overwrite=true (from run.sh: --score_args --overwrite=true)",
                        stage="6")
    if marker.is_done(options, overwrite=bool(hp["overwrite"]), inputs=inputs):
        logger.info("%s already scored from the same inputs; nothing to do", output_dir)
        return output_dir
    # the classifiers' and plots' libraries (torch, transformers, matplotlib) only now: a finished scoring is
    # skipped in a second
    from rellm.scoring import plots
    from rellm.scoring.epitome.scorer import EpitomeScorer

    # 3. EPITOME levels per utterance, then per-system figures and paired tests
    scorer = EpitomeScorer(root, mechanisms, num_threads=hp["num_threads"], batch_size=hp["batch_size"])
    score_empathy(outputs, scorer)
    # 3b. the emotion each response was written for, read back by a text classifier
    response_section, teacher = score_responses(outputs, train_expected, teacher_expected, classifier,
                                                cv_folds=hp["response_classifier_cv_folds"])
    # 3c. the teacher's expected responses scored like a system: the ceiling of every figure
    if teacher:
        score_empathy({"teacher": teacher}, scorer)
    metrics = score_test_set(outputs, missing, hp["reference_system"], mechanisms,
                             n_resamples=hp["bootstrap_resamples"], seed=hp["bootstrap_seed"],
                             response_emotion_missing=response_section["missing"])
    metrics["test_set"] = str(hp["test_set"])
    metrics["split"] = str(hp["split"])
    metrics["seed"] = hp["seed"]
    metrics["tag"] = tag
    metrics["sources"] = sources
    metrics["test_overlap"] = test_overlap
    metrics["training_data"] = training_data
    metrics["teacher"] = (reference_metrics(teacher, mechanisms) if teacher
                          else {"missing": response_section["teacher_missing"]})
    metrics["response_emotion"] = response_section
    metrics["examples"] = example_responses(outputs, teacher, count=int(hp["example_sentences"]))
    metrics["emotion_perception"] = emotion_perception(hp)
    metrics["epitome"] = {"models": str(root), "encoder": str(epitome_hp["encoder"]),
                          "test_metrics": load_metrics(root, mechanisms)}

    # 4. outputs
    metrics["figures"] = draw_figures(plots, metrics, mechanisms, output_dir)
    figures = [f for f in metrics["figures"].values() if not f.startswith("n/a")]
    write_jsonl(output_dir / "per_utt.jsonl", per_utterance_records(outputs))
    atomic_write_json(output_dir / "metrics.json", metrics)
    for system, m in metrics["systems"].items():
        logger.info("%s: %s%s%s%s", system, ", ".join(f"{k} {m['empathy'][k]['mean']:.3f}" for k in mechanisms),
                    f", UA {m['ser']['ua'] * 100:.1f}%" if m["ser"] else "",
                    f", response-emotion UA {m['response_emotion']['ua'] * 100:.1f}%" if m["response_emotion"] else "",
                    "".join(metric.log_text(m.get(metric.name)) for metric in registered_metrics()))
    logger.info("metrics.json, per_utt.jsonl and %d figures in %s", len(figures), output_dir)
    marker.mark_done(options, inputs=inputs)
    return output_dir

