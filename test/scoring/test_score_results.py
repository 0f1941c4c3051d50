"""Stage 6 end to end on synthetic stage-5 outputs: score -> metrics.json, per_utt.jsonl, plots -> RESULTS.md."""
import json
import shutil
from pathlib import Path

import pytest
import yaml
from scoring_fixtures import TINY_EPITOME_CONF, synthetic_system_outputs, tiny_encoder, write_responses

from rellm.bin import epitome as epitome_bin
from rellm.bin import results as results_bin
from rellm.bin import score as score_bin
from rellm.scoring.epitome import encoders
from rellm.utils.config import run_main
from rellm.utils.io import read_json, read_jsonl

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def recipe(tmp_path, monkeypatch, epitome_csv_dir):
    """A recipe folder with trained tiny EPITOME classifiers and three systems' stage-5 outputs."""
    monkeypatch.setattr(encoders, "load_text_encoder", lambda name: tiny_encoder())
    monkeypatch.chdir(tmp_path)
    conf = tmp_path / "conf"
    conf.mkdir()
    epitome_conf = {**TINY_EPITOME_CONF, "cache_dir": str(tmp_path / "cache"), "data_dir": str(epitome_csv_dir),
                    "overwrite": False, "verify_checksums": False}
    (conf / "epitome.yaml").write_text(yaml.safe_dump(epitome_conf), encoding="utf-8")
    shutil.copy(REPO_ROOT / "egs" / "mini" / "conf" / "score.yaml", conf / "score.yaml")
    epitome_bin.main(["train", str(conf / "epitome.yaml")])
    for system, records in synthetic_system_outputs().items():
        write_responses(tmp_path / "exp" / system / "official" / "seed1" / "infer" / "test" / "responses.jsonl",
                        records)
    return tmp_path


SCORE_ARGS = ["conf/score.yaml", "--systems", "text_only blsp_emo rellm", "--exp_root", "exp", "--split", "official",
              "--seed", "1", "--test_set", "test", "--output_dir", "exp/scores/official/seed1/test"]
RESULTS_ARGS = ["conf/score.yaml", "--corpus", "mini", "--split", "official", "--seed", "1", "--test_sets", "test",
                "--scores_dir", "exp/scores/official/seed1", "--output", "RESULTS.md",
                "--command", "./run.sh --stage 6 --stop_stage 6"]


def test_score_and_results_end_to_end(recipe):
    out = Path(score_bin.main(SCORE_ARGS))
    metrics = read_json(out / "metrics.json")
    assert set(metrics["systems"]) == {"text_only", "blsp_emo", "rellm"}
    rellm = metrics["systems"]["rellm"]
    assert rellm["n"] == 60
    for mech in ("ER", "IP", "EX"):
        assert 0.0 <= rellm["empathy"][mech]["mean"] <= 2.0
        assert sum(rellm["empathy"][mech]["counts"]) == 60
        assert sum(rellm["empathy"][mech]["distribution"]) == pytest.approx(1.0)
    # the text-only system never answers SER: no SER figures, no McNemar against it
    assert metrics["systems"]["text_only"]["ser"] is None
    assert metrics["comparisons"]["text_only"]["ser"] is None
    ser = metrics["comparisons"]["blsp_emo"]["ser"]
    assert ser["mcnemar"]["p_value"] <= 1.0 and ser["ua_reference"] > ser["ua_baseline"]
    assert rellm["ser"]["classes_present"] == ["neutral", "happy", "angry", "sad", "surprise"]
    # the emotion head's labels (RE-LLM's records carry them): wrong on k % 4 == 0, i.e. 3 of the 12 of each class
    assert rellm["ser_head"]["ua"] == pytest.approx(0.75)
    assert metrics["systems"]["blsp_emo"]["ser_head"] is None and metrics["systems"]["text_only"]["ser_head"] is None
    assert set(rellm["per_emotion"]) == {"neutral", "happy", "angry", "sad", "surprise"}
    assert rellm["empathy_by_ser"]["ER"]["correct"]["n"] + rellm["empathy_by_ser"]["ER"]["wrong"]["n"] == 60
    boot = metrics["comparisons"]["text_only"]["empathy"]["EX"]["bootstrap"]
    assert boot["ci_low"] <= boot["difference"] <= boot["ci_high"] and boot["seed"] == 0
    per_utt = read_jsonl(out / "per_utt.jsonl")
    assert len(per_utt) == 60 and set(per_utt[0]["systems"]) == {"text_only", "blsp_emo", "rellm"}
    assert set(per_utt[0]["systems"]["rellm"]) >= {"ER", "IP", "EX", "ser_correct", "response"}
    # the per-utterance levels are the ones the mean is made of
    assert sum(u["systems"]["rellm"]["EX"] for u in per_utt) / 60 == pytest.approx(rellm["empathy"]["EX"]["mean"])
    for name in ("empathy_levels", "confusion_matrices", "empathy_vs_ser", "empathy_per_emotion"):
        assert (out / f"{name}.png").stat().st_size > 1000

    # idempotent: a second run with the same inputs does nothing
    stamp = (out / "metrics.json").stat().st_mtime_ns
    score_bin.main(SCORE_ARGS)
    assert (out / "metrics.json").stat().st_mtime_ns == stamp

    results = results_bin.main(RESULTS_ARGS)
    text = Path(results).read_text(encoding="utf-8")
    assert "## Environment" in text and "git:" in text and "torch" in text
    assert "./run.sh --stage 6 --stop_stage 6" in text
    assert "| text-only LLM |" in text and "| BLSP-Emo baseline |" in text and "| RE-LLM |" in text
    rellm_row = next(line for line in text.splitlines() if line.startswith("| RE-LLM |")).split(" | ")
    assert rellm_row[6] == "75.0"  # the SER head UA column, after UA and WA
    assert "vs text-only" in text and "vs BLSP-Emo" in text and "Wilcoxon p=" in text and "McNemar p=" in text
    assert "trained on the mini corpus itself" in text
    assert "classifiers re-trained here on the encoder tiny-test-encoder" in text  # which encoder scored the table
    # no stage-3 responses in this recipe: the response-emotion column is empty and a line says why
    assert "- response-emotion UA not measured: exp/responses/official/train/expected.jsonl does not exist" in text
    assert metrics["systems"]["rellm"]["response_emotion"] is None and metrics["response_emotion"]["missing"]
    assert "Published RE-LLM figures" not in text  # no paper figures for the synthetic corpus
    assert (Path("results_figures/official_seed1/test/empathy_levels.png")).is_file()
    assert "](results_figures/official_seed1/test/empathy_levels.png)" in text
    rel = metrics["comparisons"]["text_only"]["empathy"]["EX"]["relative_improvement_pct"]
    if rel is not None:
        assert f"EX {rel:+.1f}% vs text-only" in text


def test_missing_system_is_a_marked_row(recipe):
    shutil.rmtree(recipe / "exp" / "blsp_emo")
    out = Path(score_bin.main(SCORE_ARGS))
    metrics = read_json(out / "metrics.json")
    assert set(metrics["systems"]) == {"text_only", "rellm"}
    assert "run stage 5 for blsp_emo" in metrics["missing_systems"]["blsp_emo"]
    text = Path(results_bin.main(RESULTS_ARGS)).read_text(encoding="utf-8")
    assert "| BLSP-Emo baseline | missing |" in text
    assert "BLSP-Emo baseline is missing" in text


def test_no_outputs_at_all_is_one_clear_message(recipe, capsys):
    shutil.rmtree(recipe / "exp")
    with pytest.raises(SystemExit) as exit_info:
        run_main(score_bin.main, SCORE_ARGS)
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("ERROR: no system has outputs for test set test")
    assert "Traceback" not in err
    # RESULTS.md still gets written, saying the test set has no scores
    text = Path(results_bin.main(RESULTS_ARGS)).read_text(encoding="utf-8")
    assert "No scores for test" in text


def test_paper_figures_are_quoted_for_real_corpora(recipe):
    out = Path(score_bin.main(SCORE_ARGS))
    metrics = read_json(out / "metrics.json")
    text = Path(results_bin.main([*RESULTS_ARGS[:2], "esd", *RESULTS_ARGS[3:]])).read_text(encoding="utf-8")
    assert "Published RE-LLM figures" in text and "1.851" in text and "+139.28%" in text
    # the paper's figure and this run's, side by side, with the source of each published one
    rellm = metrics["systems"]["rellm"]
    assert f"| RE-LLM ER (mean level) | 1.851 [SUM] | {rellm['empathy']['ER']['mean']:.3f} |" in text
    assert f"| RE-LLM EX (mean level) | not published | {rellm['empathy']['EX']['mean']:.3f} |" in text
    assert f"| RE-LLM UA (%) | 98.9 [SUM] | {rellm['ser']['ua'] * 100:.1f} |" in text
    ex = metrics["comparisons"]["text_only"]["empathy"]["EX"]["relative_improvement_pct"]
    assert f"| RE-LLM EX vs text-only | +139.28% [ABS] | {ex:+.1f}% |" in text
    ua = metrics["comparisons"]["blsp_emo"]["ser"]
    assert (f"| RE-LLM UA vs BLSP-Emo | +2.3 (points or %: not stated) [ABS] | {ua['ua_difference_points']:+.1f} points "
            f"({ua['ua_relative_improvement_pct']:+.1f}%) |") in text
    assert "| RE-LLM UA vs text-only |" not in text  # the paper compares UA with BLSP-Emo only


def test_epitome_cli_metrics_and_score(recipe, capsys, tmp_path):
    epitome_bin.main(["metrics", "conf/epitome.yaml"])
    printed = json.loads(capsys.readouterr().out)
    assert set(printed) == {"ER", "IP", "EX"} and set(printed["ER"]) == {"accuracy", "macro_f1", "iou_f1"}
    src = recipe / "exp" / "rellm" / "official" / "seed1" / "infer" / "test" / "responses.jsonl"
    epitome_bin.main(["score", "conf/epitome.yaml", "--input", str(src), "--output", "levels.jsonl"])
    levels = read_jsonl("levels.jsonl")
    assert len(levels) == 60 and all(rec[m] in (0, 1, 2) for rec in levels for m in ("ER", "IP", "EX"))
    assert levels[0]["utt_id"] == "utt000"


def test_a_system_whose_answers_never_parse_scores_ua_zero():
    from rellm.scoring.system_scores import system_metrics

    records = {f"u{i}": {"emotion": emo, "ser_pred": "unknown", "ser_output": "I'm not equipped to say.",
                         "levels": {"ER": 1}} for i, emo in enumerate(["happy", "sad", "happy", "angry"])}
    ser = system_metrics(records, ["ER"])["ser"]
    assert ser is not None and ser["ua"] == 0.0 and ser["wa"] == 0.0
    for r in records.values():  # no answer text and nothing parsed: the system was not asked
        del r["ser_output"]
    assert system_metrics(records, ["ER"])["ser"] is None


def _teacher(transcripts_emotions):
    """Stage-3 records whose response carries its emotion in words (the teacher was told the emotion)."""
    cues = {"neutral": "noted okay", "happy": "wonderful glad", "angry": "frustrating unfair", "sad": "sorry heavy",
            "surprise": "wow unexpected"}
    return [{"utt_id": utt, "emotion": emotion, "transcript": transcript, "instruction": "",
             "output": f"i hear you about {transcript} . {cues[emotion]}", "early_stop": False}
            for utt, transcript, emotion in transcripts_emotions]


def test_response_emotion_teacher_row_repeats_and_examples(recipe):
    """RE-LLM's responses follow the emotion, the text-only system's do not: UA, McNemar, teacher row, examples."""
    from rellm.data.emotions import EMOTIONS

    train = [(f"tr{k:03d}", f"training sentence {k // 5}", EMOTIONS[k % 5]) for k in range(100)]
    write_responses(recipe / "exp" / "responses" / "official" / "train" / "expected.jsonl", _teacher(train))
    systems = synthetic_system_outputs()
    test = [(r["utt_id"], r["transcript"], r["emotion"]) for r in systems["rellm"]]
    write_responses(recipe / "exp" / "responses" / "official" / "test" / "expected.jsonl", _teacher(test))
    teacher = {r["utt_id"]: r["output"] for r in _teacher(test)}
    for r in systems["rellm"]:
        r["response"] = teacher[r["utt_id"]] + f" (reply {r['utt_id']})"
    write_responses(recipe / "exp" / "rellm" / "official" / "seed1" / "infer" / "test" / "responses.jsonl",
                    systems["rellm"])

    out = Path(score_bin.main(SCORE_ARGS))
    metrics = read_json(out / "metrics.json")
    assert metrics["systems"]["rellm"]["response_emotion"]["ua"] == 1.0
    # the text-only system's few generic replies: the classifier reads at most one emotion from each reply
    assert metrics["systems"]["text_only"]["response_emotion"]["ua"] <= 0.6
    comp = metrics["comparisons"]["text_only"]["response_emotion"]
    assert comp["mcnemar"]["p_value"] < 0.01 and comp["ua_reference"] == 1.0
    section = metrics["response_emotion"]
    assert section["classifier"]["n_train"] == 100 and section["classifier"]["cv"]["n_splits"] == 5
    assert section["classifier"]["cv"]["ua"] == 1.0
    assert section["teacher"]["response_emotion"]["ua"] == 1.0 and section["teacher"]["n"] == 60
    # three canned replies for 60 utterances: every one repeats; RE-LLM's replies are all distinct
    assert metrics["systems"]["text_only"]["distinct_responses"]["share_identical"] == 1.0
    assert metrics["systems"]["rellm"]["distinct_responses"]["share_identical"] == 0.0
    per_utt = read_jsonl(out / "per_utt.jsonl")
    assert all(u["systems"]["rellm"]["response_emotion_pred"] == u["emotion"] for u in per_utt)
    # response words: RE-LLM's replies repeat what was said, the canned text-only replies do not
    words = metrics["systems"]["rellm"]["response_words"]
    assert words["recall"] == 1.0 and words["n_scored"] == 60
    assert words["recall_other_sentences"] < 0.5
    assert all(u["systems"]["rellm"]["word_recall"] == 1.0 for u in per_utt)
    text_only_words = metrics["systems"]["text_only"]["response_words"]["recall"]
    assert text_only_words < 0.2
    versus = metrics["comparisons"]["text_only"]["response_words"]
    assert versus["n_paired"] == 60 and versus["reference_mean"] == 1.0
    assert versus["baseline_mean"] == pytest.approx(text_only_words) and versus["wilcoxon"]["p_value"] < 0.001
    assert len(metrics["examples"]) == 2 and set(metrics["examples"][0]["rows"][0]["responses"]) == {
        "text_only", "blsp_emo", "rellm", "teacher"}

    text = Path(results_bin.main(RESULTS_ARGS)).read_text(encoding="utf-8")
    assert ("| system | ER | IP | EX | UA (%) | WA (%) | SER head UA (%) | resp. emotion UA (%) | resp. words (%) "
            "| same response (%) | n |" in text)
    # the synthetic test set repeats (transcript, emotion) pairs, and the teacher answers a pair the same way
    repeated = section["teacher"]["distinct_responses"]
    assert repeated["share_identical"] > 0.1 and repeated["share_identical_other_sentence"] == 0.0
    assert repeated["most_common_share"] <= 0.1  # but no reply is given to more than 10 % of the utterances
    teacher_words = section["teacher"]["response_words"]
    assert teacher_words["recall"] == 1.0  # the synthetic teacher repeats the transcript
    # the teacher's responses are scored like a system: EPITOME levels too (the ceiling row)
    teacher_levels = metrics["teacher"]["empathy"]
    assert sum(teacher_levels["ER"]["counts"]) == 60 and metrics["teacher"]["n"] == 60
    assert (f"| teacher (expected responses) | {teacher_levels['ER']['mean']:.3f} | {teacher_levels['IP']['mean']:.3f} "
            f"| {teacher_levels['EX']['mean']:.3f} | – | – | – | 100.0 | "
            f"100.0 ({teacher_words['recall_other_sentences'] * 100:.1f}) | {repeated['most_common_share'] * 100:.1f} "
            "| 60 |") in text
    top = metrics["systems"]["text_only"]["distinct_responses"]["most_common_share"]
    assert top > 0.1 and f" | {top * 100:.1f} ✗ | 60 |" in text  # one canned reply for over 10 %: marked
    assert f"response-emotion UA {comp['ua_difference_points']:+.1f} points vs text-only" in text
    rellm_row = next(line for line in text.splitlines() if line.startswith("| RE-LLM |")).split(" | ")
    assert rellm_row[8].startswith(f"100.0 ({words['recall_other_sentences'] * 100:.1f}) <sup>***t</sup>")
    assert (f"response words {(1 - text_only_words) * 100:+.1f} points vs text-only (100.0% vs "
            f"{text_only_words * 100:.1f}% of the transcript's content words; Wilcoxon p=") in text
    assert "that occur in the response, averaged over the test utterances" in text
    assert "5-fold cross-validated UA on them, folds grouped by transcript (no sentence in both), is 100.0%" in text
    assert "our addition, not the paper's metric" in text
    first = metrics["examples"][0]
    assert f"\"{first['transcript']}\"" in text
    row = first["rows"][3]
    assert f"| sad (`{row['utt_id']}`) | " in text and f"{teacher[row['utt_id']]} [sad]" in text


def test_rewritten_results_do_not_make_the_checkout_dirty(tmp_path):
    """A fresh clone's run rewrites its committed RESULTS.md and figures; only other changes count as uncommitted."""
    import subprocess

    from rellm.utils.revision import git_revision

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    recipe = tmp_path / "egs" / "mini"
    (recipe / "results_figures" / "official_seed1").mkdir(parents=True)
    files = {recipe / "RESULTS.md": "old", recipe / "results_figures" / "official_seed1" / "a.png": "old",
             tmp_path / "code.py": "x = 1"}
    for path, text in files.items():
        path.write_text(text)
    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    for path in list(files)[:2]:
        path.write_text("new")
    rev, dirty = git_revision(tmp_path)
    assert len(rev) == 40 and dirty is False
    (tmp_path / "code.py").write_text("x = 2")
    assert git_revision(tmp_path)[1] is True
