"""The response-emotion metric: a text classifier trained on the teacher's responses reads the emotion back."""
import numpy as np
import pytest
from scipy import stats
from scoring_fixtures import write_responses

from rellm.data.emotions import EMOTIONS
from rellm.scoring.response_emotion import (
    ResponseEmotionClassifier,
    distinct_responses,
    example_responses,
    load_expected,
    pick_example_sentences,
    predict_records,
    response_emotion_metrics,
    score_responses,
    train_on_expected,
)
from rellm.scoring.system_scores import compare_labels

# Words that carry each emotion in the constructed responses; "filler" words are shared by all.
CUES = {"neutral": "noted okay", "happy": "wonderful glad", "angry": "frustrating unfair", "sad": "sorry heavy",
        "surprise": "wow unexpected"}
SENTENCES = [f"sentence number {k} about the day" for k in range(10)]


def teacher_records(sentences=SENTENCES, voices=("m1", "f1"), cue=lambda k, e: CUES[e]):
    """Two voices x five emotions per sentence; the response carries ``cue(sentence index, emotion)``."""
    out = []
    for k, sentence in enumerate(sentences):
        for voice in voices:
            for emotion in EMOTIONS:
                out.append({"utt_id": f"{voice}_{emotion}_s{k:03d}", "emotion": emotion, "transcript": sentence,
                            "instruction": "", "output": f"i hear you . {cue(k, emotion)} . tell me more",
                            "early_stop": False})
    return out


def as_records(expected):
    return {r["utt_id"]: {**r, "response": r["output"]} for r in expected}


def system_from(records, response_for):
    return {u: {**r, "response": response_for(r)} for u, r in records.items()}


@pytest.fixture
def trained():
    classifier = ResponseEmotionClassifier(seed=0)
    summary = train_on_expected(classifier, as_records(teacher_records()), cv_folds=5)
    return classifier, summary


def test_ua_of_following_constant_and_wrong_systems(trained):
    classifier, summary = trained
    assert summary["n_train"] == 100 and summary["n_train_sentences"] == 10
    assert summary["cv"]["ua"] == 1.0 and summary["cv"]["n_splits"] == 5 and len(summary["cv"]["per_fold_ua"]) == 5
    test = as_records(teacher_records(sentences=["a new sentence nobody said", "another unseen one"]))
    follows = system_from(test, lambda r: f"oh . {CUES[r['emotion']]} .")
    constant = system_from(test, lambda r: "i understand . sorry heavy")
    shifted = system_from(test, lambda r: CUES[EMOTIONS[(EMOTIONS.index(r["emotion"]) + 1) % 5]])
    for records in (follows, constant, shifted):
        predict_records(records, classifier)
    assert response_emotion_metrics(follows)["ua"] == 1.0
    const = response_emotion_metrics(constant)
    assert const["ua"] == pytest.approx(0.2) and const["per_class_recall"]["sad"] == 1.0
    assert response_emotion_metrics(shifted)["ua"] == 0.0


def test_an_empty_response_is_a_wrong_answer(trained):
    classifier, _ = trained
    assert classifier.predict(["", "   ", "wow unexpected"]) == ["unknown", "unknown", "surprise"]


def test_cross_validation_keeps_each_sentence_in_one_fold():
    """Each sentence's responses carry emotion words of their own: learnable only by memorising the sentence.

    Both voices give identical responses, so folds that split a sentence would score perfectly; folds
    grouped by transcript see none of a held-out sentence's words and fall to a constant guess."""
    expected = teacher_records(cue=lambda k, e: f"s{k}{e}x")
    summary = train_on_expected(ResponseEmotionClassifier(seed=0), as_records(expected), cv_folds=5)
    assert summary["cv"]["ua"] <= 0.3 and summary["cv"]["n"] == 100 and summary["cv"]["n_not_held_out"] == 0
    # the same data split by utterance (each its own group, in shuffled order) is solved by memorisation
    groups = list(np.random.default_rng(0).permutation(len(expected)))
    ungrouped = ResponseEmotionClassifier(seed=0).cross_validate(
        [r["output"] for r in expected], [r["emotion"] for r in expected], groups, 5)
    assert ungrouped["ua"] > 0.6  # all but the pairs that fell into one fold


def test_cv_with_a_single_sentence_is_none():
    expected = teacher_records(sentences=SENTENCES[:1])
    assert train_on_expected(ResponseEmotionClassifier(), as_records(expected), cv_folds=5)["cv"] is None


def test_comparison_mcnemar_matches_scipy_and_bootstrap_brackets_the_difference():
    rng = np.random.default_rng(3)
    refs = [EMOTIONS[k % 5] for k in range(80)]
    pred_a = [r if rng.random() < 0.8 else EMOTIONS[(EMOTIONS.index(r) + 1) % 5] for r in refs]
    pred_b = [r if rng.random() < 0.3 else "unknown" for r in refs]
    out = compare_labels(refs, pred_a, pred_b, n_resamples=2000, seed=0)
    ca = np.array([r == p for r, p in zip(refs, pred_a)])
    cb = np.array([r == p for r, p in zip(refs, pred_b)])
    only_a, only_b = int((ca & ~cb).sum()), int((~ca & cb).sum())
    assert out["mcnemar"]["only_a_correct"] == only_a and out["mcnemar"]["only_b_correct"] == only_b
    assert out["mcnemar"]["p_value"] == pytest.approx(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)
    assert out["ua_difference_points"] == pytest.approx((out["ua_reference"] - out["ua_baseline"]) * 100)
    boot = out["ua_bootstrap"]
    assert boot["ci_low"] <= boot["difference"] <= boot["ci_high"] and boot["ci_low"] > 0


def test_distinct_responses_counts_repeats():
    records = {
        "u1": {"transcript": "A", "response": "Same reply."},
        "u2": {"transcript": "B", "response": "same   reply."},   # identical up to case and spaces, other sentence
        "u3": {"transcript": "C", "response": "own reply"},
        "u4": {"transcript": "C", "response": "within sentence"},
        "u5": {"transcript": "C", "response": "Within sentence"},  # repeated, but only within sentence C
    }
    d = distinct_responses(records)
    assert d["n"] == 5 and d["n_distinct"] == 3
    assert d["share_identical"] == pytest.approx(4 / 5)
    assert d["share_identical_other_sentence"] == pytest.approx(2 / 5)
    assert d["most_common_count"] == 2 and d["most_common_share"] == pytest.approx(0.4)
    assert distinct_responses({}) is None


def test_example_sentences_are_the_first_complete_ones_in_sorted_order():
    recs = as_records(teacher_records(sentences=["b sentence", "a sentence", "c sentence"]))
    del recs["m1_sad_s001"], recs["f1_sad_s001"]  # "a sentence" lacks sad
    picked = pick_example_sentences([recs], count=2)
    assert [s for s, _ in picked] == ["b sentence", "c sentence"]
    assert picked[0][1] == {e: f"f1_{e}_s000" for e in EMOTIONS}  # smallest utt_id per emotion
    examples = example_responses({"rellm": recs}, teacher=None, count=1)
    assert [r["emotion"] for r in examples[0]["rows"]] == list(EMOTIONS)
    assert examples[0]["rows"][3]["responses"] == {"rellm": "i hear you . sorry heavy . tell me more"}


def test_score_responses_reports_what_is_missing(tmp_path):
    train, test = tmp_path / "train" / "expected.jsonl", tmp_path / "test" / "expected.jsonl"
    outputs = {"rellm": system_from(as_records(teacher_records(SENTENCES[:2])), lambda r: CUES[r["emotion"]])}
    section, teacher = score_responses(outputs, train, test, ResponseEmotionClassifier())
    assert "run stage 3 for the training set" in section["missing"] and teacher is None
    assert "response_emotion_pred" not in next(iter(outputs["rellm"].values()))

    write_responses(train, teacher_records())
    section, teacher = score_responses(outputs, train, test, ResponseEmotionClassifier())
    assert section["missing"] is None and "stage 3 run on the test set" in section["teacher_missing"]
    assert response_emotion_metrics(outputs["rellm"])["ua"] == 1.0

    write_responses(test, teacher_records(["unseen words here", "more unseen words"],
                                          cue=lambda k, e: f"{CUES[e]} about thing{k}"))
    section, teacher = score_responses(outputs, train, test, ResponseEmotionClassifier())
    assert section["teacher"]["n"] == 20 and section["teacher"]["response_emotion"]["ua"] == 1.0
    # both voices get the same teacher response: every utterance repeats one, none across sentences
    assert section["teacher"]["distinct_responses"]["share_identical"] == 1.0
    assert section["teacher"]["distinct_responses"]["share_identical_other_sentence"] == 0.0
    assert set(teacher) == set(load_expected(test))


def test_a_bad_expected_file_is_an_error_naming_it(tmp_path):
    path = write_responses(tmp_path / "expected.jsonl", [{"utt_id": "u1", "emotion": "happy", "transcript": "x"}])
    with pytest.raises(ValueError, match=r"expected.jsonl: record 1 lacks \['output'\]"):
        load_expected(path)


@pytest.mark.parametrize("recipe", ["mini", "iemocap", "esd", "msp_podcast"])
def test_every_recipe_configures_the_classifier(recipe):
    from pathlib import Path

    from rellm.scoring.response_emotion import classifier_from_config
    from rellm.utils.config import load_config, top_level_keys

    egs = Path(__file__).resolve().parents[2] / "egs"
    conf = egs / recipe / "conf" / "score.yaml"
    assert set(top_level_keys(conf)) == set(top_level_keys(egs / "mini" / "conf" / "score.yaml"))
    hp = load_config(conf)
    classifier = classifier_from_config(hp)
    assert classifier.options["seed"] == hp["response_classifier_seed"] and hp["train_set"] == "train"
    assert hp["response_classifier_cv_folds"] == 5 and hp["repeated_max_share"] == pytest.approx(0.10)
