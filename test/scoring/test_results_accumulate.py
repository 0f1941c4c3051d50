"""Stage 6 over several runs and in hard cases, on real score folders made by running rellm.bin.score:
two seeds accumulate into one RESULTS.md with a mean ± sd summary and pooled tests, an ablation tag keeps its own
results, any system name is scored, and a figure that cannot be computed is n/a with its reason, never fatal."""
import json
from pathlib import Path

import numpy as np
import pytest
from scoring_fixtures import synthetic_system_outputs, write_responses
from test_score_results import RESULTS_ARGS, SCORE_ARGS, recipe  # noqa: F401 (recipe: the fixture)

from rellm.bin import results as results_bin
from rellm.bin import score as score_bin
from rellm.data.emotions import EMOTIONS
from rellm.scoring import stage as scoring_stage
from rellm.scoring.significance import mcnemar_exact, wilcoxon_signed_rank
from rellm.utils.io import read_json, read_jsonl


def write_seed(root, seed, rng_seed, systems=("text_only", "blsp_emo", "rellm"), tag=""):
    outputs = synthetic_system_outputs(seed=rng_seed)
    for system in systems:
        records = outputs.get(system, outputs["blsp_emo"])  # a new system answers like BLSP-Emo
        base = root / "exp" / tag if tag else root / "exp"
        write_responses(base / system / "official" / f"seed{seed}" / "infer" / "test" / "responses.jsonl", records)
    return outputs


def score_args(seed, *extra):
    args = [a if a != "1" else str(seed) for a in SCORE_ARGS[:-1]]
    return [*args, f"exp/scores/official/seed{seed}/test", *extra]


def results_args(seed, *extra):
    return [a if a != "1" else str(seed) for a in RESULTS_ARGS] + list(extra)


def test_two_seeds_accumulate_into_one_results_with_a_summary(recipe):  # noqa: F811
    write_seed(recipe, 2, rng_seed=1)  # seed 1: the fixture's (rng seed 0)
    first = Path(score_bin.main(score_args(1)))
    second = Path(score_bin.main(score_args(2)))
    m1, m2 = read_json(first / "metrics.json"), read_json(second / "metrics.json")
    assert m1["systems"]["rellm"]["ser"]["ua"] != m2["systems"]["rellm"]["ser"]["ua"]  # two different runs

    # RESULTS.md is rewritten from every scored run, whichever seed stage 6 was called for
    text = Path(results_bin.main(results_args(2))).read_text(encoding="utf-8")
    assert "## Run: official, seed 1" in text and "## Run: official, seed 2" in text
    assert "## Summary over 2 runs" in text and "scored runs (split/fold, seed): official seed1, official seed2" in text
    assert text.index("## Summary over 2 runs") < text.index("## Run: official, seed 1")
    rows = [line for line in text.splitlines() if line.startswith("| RE-LLM | ")]
    assert len([r for r in rows if r.endswith(" | 60 |")]) == 2 and len([r for r in rows if " ± " in r]) == 1

    summary = read_json(recipe / "exp" / "scores" / "summary.json")
    assert set(summary) == {"test"}
    er = [m["systems"]["rellm"]["empathy"]["ER"]["mean"] for m in (m1, m2)]
    ua = [m["systems"]["blsp_emo"]["ser"]["ua"] for m in (m1, m2)]
    assert summary["test"]["rellm"]["ER"] == pytest.approx({"mean": np.mean(er), "sd": np.std(er, ddof=1), "n": 2})
    assert summary["test"]["blsp_emo"]["ua"]["mean"] == pytest.approx(np.mean(ua))
    assert "ua" not in summary["test"]["text_only"]  # no SER answers in either run: no figure, not a zero
    cell = f"{np.mean(er):.3f} ± {np.std(er, ddof=1):.3f} (2)"
    summary_row = next(line for line in text.splitlines() if line.startswith("| RE-LLM | ") and " ± " in line)
    assert summary_row.split(" | ")[1] == cell

    # significance on the pooled per-utterance pairs of both runs, recomputed here from per_utt.jsonl
    pooled = read_json(recipe / "exp" / "scores" / "pooled_comparisons.json")["test"]
    lines = read_jsonl(first / "per_utt.jsonl") + read_jsonl(second / "per_utt.jsonl")
    a = [u["systems"]["rellm"]["EX"] for u in lines]
    b = [u["systems"]["text_only"]["EX"] for u in lines]
    ex = pooled["comparisons"]["text_only"]["empathy"]["EX"]
    assert ex["n_pairs"] == 120 and ex["wilcoxon"] == wilcoxon_signed_rank(a, b)
    ser = pooled["comparisons"]["blsp_emo"]["ser"]
    expected = mcnemar_exact([u["systems"]["rellm"]["ser_correct"] for u in lines],
                             [u["systems"]["blsp_emo"]["ser_correct"] for u in lines])
    assert ser["n_pairs"] == 120 and ser["mcnemar"] == expected
    assert pooled["comparisons"]["text_only"]["ser"] is None  # text-only gave no SER answers
    assert f"McNemar p={expected['p_value']:.3g})" in text and "pairs of 2 runs pooled" in text
    # no system of this toy recipe was trained on its test set
    assert m1["test_overlap"] == {} and "Runs whose test set overlaps" not in text


def test_overlapping_runs_are_listed_and_left_out_of_a_second_summary(recipe):  # noqa: F811
    write_seed(recipe, 2, rng_seed=1)
    score_bin.main(score_args(1))
    second = Path(score_bin.main(score_args(2)))
    metrics = read_json(second / "metrics.json")
    metrics["test_overlap"] = {"blsp_emo": "the released BLSP-Emo checkpoint was trained on IEMOCAP Session 1"}
    (second / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    text = Path(results_bin.main(results_args(1))).read_text(encoding="utf-8")
    assert ("- official seed2: BLSP-Emo baseline: the released BLSP-Emo checkpoint was trained on IEMOCAP Session 1"
            in text)
    assert "Without those runs (official seed1):" in text
    assert "| BLSP-Emo baseline † |" in text  # marked in that run's table
    first = read_json(recipe / "exp" / "scores" / "official" / "seed1" / "test" / "metrics.json")
    clean_row = text.split("Without those runs (official seed1):")[1].split("| RE-LLM | ")[1].split(" | ")[0]
    assert clean_row == f"{first['systems']['rellm']['empathy']['ER']['mean']:.3f} (1)"


def test_an_ablation_tag_keeps_its_own_results(recipe):  # noqa: F811
    """--tag abl: RE-LLM re-run under exp/abl, the baselines read from the main run, results in RESULTS_abl.md."""
    score_bin.main(SCORE_ARGS)
    results_bin.main(RESULTS_ARGS)
    main_text = Path("RESULTS.md").read_text(encoding="utf-8")
    write_seed(recipe, 1, rng_seed=3, systems=("rellm",), tag="abl")
    out = Path(score_bin.main([*SCORE_ARGS[:-2], "--tag", "abl"]))
    assert out == Path("exp/abl/scores/official/seed1/test")
    metrics = read_json(out / "metrics.json")
    assert metrics["sources"]["rellm"] == "exp/abl/rellm/official/seed1/infer/test/responses.jsonl"
    assert metrics["sources"]["text_only"] == "exp/text_only/official/seed1/infer/test/responses.jsonl"
    main = read_json("exp/scores/official/seed1/test/metrics.json")
    assert metrics["systems"]["rellm"]["ser"]["ua"] != main["systems"]["rellm"]["ser"]["ua"]
    assert metrics["systems"]["text_only"] == main["systems"]["text_only"]
    written = results_bin.main([*RESULTS_ARGS[:RESULTS_ARGS.index("--scores_dir")],
                                *RESULTS_ARGS[RESULTS_ARGS.index("--output"):], "--tag", "abl"])
    assert Path(written) == Path("RESULTS_abl.md")
    text = Path(written).read_text(encoding="utf-8")
    assert text.startswith("# RESULTS: mini (ablation abl)") and "results_figures_abl/official_seed1" in text
    assert Path("RESULTS.md").read_text(encoding="utf-8") == main_text  # the main results are untouched
    assert (recipe / "exp" / "abl" / "scores" / "summary.json").is_file()


def test_any_system_name_is_scored_and_labelled(recipe):  # noqa: F811
    write_seed(recipe, 1, rng_seed=0, systems=("blsp_emo_ft", "my_system"))
    out = Path(score_bin.main([*SCORE_ARGS[:2], "text_only blsp_emo blsp_emo_ft my_system rellm", *SCORE_ARGS[3:]]))
    metrics = read_json(out / "metrics.json")
    assert set(metrics["comparisons"]) == {"text_only", "blsp_emo", "blsp_emo_ft", "my_system"}
    text = Path(results_bin.main(RESULTS_ARGS)).read_text(encoding="utf-8")
    rows = [line.split(" | ")[0] for line in text.splitlines() if line.startswith("| ") and " | 60 |" in line]
    assert rows[:5] == ["| text-only LLM", "| BLSP-Emo baseline", "| BLSP-Emo (fine-tuned)", "| RE-LLM", "| my_system"]
    assert "- RE-LLM vs BLSP-Emo (fine-tuned) on 60 paired utterances:" in text
    # its own significance letter: F (fine-tuned) beside B (BLSP-Emo), as the protocol says
    rellm_row = next(line for line in text.splitlines() if line.startswith("| RE-LLM |"))
    assert "<sup>***B</sup><sup>***F</sup>" in rellm_row and "<sup>*t</sup>/<sup>*B</sup>/<sup>*F</sup>" in text


def test_figures_that_cannot_be_computed_are_na_with_their_reason(recipe, monkeypatch):  # noqa: F811
    """A random teacher that wrote nothing, SER answers that are all empty, a figure that fails to draw: stage 6
    finishes and says what is n/a and why (the IEMOCAP dry run through the importers met the first)."""
    from rellm.scoring import plots

    teacher = [{"utt_id": f"tr{k}", "emotion": EMOTIONS[k % 5], "transcript": f"sentence {k}", "instruction": "",
                "output": "", "early_stop": False} for k in range(20)]
    write_responses(recipe / "exp" / "responses" / "official" / "train" / "expected.jsonl", teacher)
    write_responses(recipe / "exp" / "responses" / "official" / "test" / "expected.jsonl",
                    [{**r, "utt_id": f"utt{k:03d}"} for k, r in enumerate(teacher)])
    outputs = synthetic_system_outputs()
    for r in outputs["rellm"]:
        r.update(response="", ser_output="", ser_pred="unknown")
    write_responses(recipe / "exp" / "rellm" / "official" / "seed1" / "infer" / "test" / "responses.jsonl",
                    outputs["rellm"])

    def broken(metrics, mechanisms, path):
        raise ValueError("no data to draw")

    monkeypatch.setitem(plots.FIGURES, "empathy_per_emotion", broken)
    out = Path(score_bin.main(SCORE_ARGS))
    metrics = read_json(out / "metrics.json")
    section = metrics["response_emotion"]
    assert "hold no words to learn from (20 empty" in section["missing"] and section["classifier"] is None
    rellm = metrics["systems"]["rellm"]
    assert rellm["ser"] is None and rellm["response_emotion"] is None
    assert rellm["not_available"]["ser"] == "no SER answers: all 60 SER answers are empty and none names an emotion"
    assert rellm["not_available"]["response_emotion"] == section["missing"]
    assert rellm["empty_responses"].startswith("60 of 60 responses are empty")
    assert metrics["figures"]["empathy_per_emotion"] == "n/a: ValueError: no data to draw"
    assert Path(metrics["figures"]["empathy_levels"]).is_file()
    # the teacher's empty responses are still scored like a system: its EPITOME row is there
    assert metrics["teacher"]["n"] == 20 and sum(metrics["teacher"]["empathy"]["ER"]["counts"]) == 20
    assert metrics["teacher"]["response_emotion"] is None
    text = Path(results_bin.main(RESULTS_ARGS)).read_text(encoding="utf-8")
    rellm_row = next(line for line in text.splitlines() if line.startswith("| RE-LLM |")).split(" | ")
    assert rellm_row[4:6] == ["n/a", "n/a"] and rellm_row[7] == "n/a"
    assert ("- n/a: UA / WA of text-only LLM, RE-LLM: no SER answers: all 60 SER answers are empty and none names "
            "an emotion") in text
    assert f"- response-emotion UA not measured: {section['missing']}" in text
    assert text.count(section["missing"]) == 1  # said once, not again per system
    assert "- note (RE-LLM): 60 of 60 responses are empty" in text


def test_a_prosody_baseline_without_two_emotions_is_na(tmp_path):
    """The emotion-perception reference is n/a with its reason when the train set holds fewer than two emotions."""
    data = tmp_path / "data"
    data.mkdir()
    entry = {"wav": "{data_root}/missing.wav", "duration": 1.0, "transcript": "hello there", "emotion": "sad",
             "arousal": None, "valence": None, "dominance": None, "speaker": "s1", "gender": "F"}
    (data / "train.json").write_text(json.dumps({"u1": entry, "u2": {**entry, "wav": "{data_root}/other.wav"}}))
    (data / "data_root.txt").write_text(str(tmp_path))
    hp = {"exp_root": str(tmp_path / "exp"), "split": "s", "prosody_baseline": True, "data_dir": str(data),
          "train_set": "train", "valid_set": "valid", "test_set": "test"}
    section = scoring_stage.emotion_perception(hp)
    assert "needs at least two emotions in the train set" in section["prosody_baseline"]["missing"]
