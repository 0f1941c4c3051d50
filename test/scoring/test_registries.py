"""The worked examples of DEVELOPING.md#adding-a-metric and #adding-a-system, run for real.

A metric is one file (a module defining ``METRIC``) plus one line (its name in
``rellm.scoring.metric_registry.METRIC_MODULES``): stage 6 then computes it per utterance, puts it in
metrics.json, per_utt.jsonl and summary.json, tests it against each baseline, fingerprints its settings and shows
it in RESULTS.md. A system is a config (``conf/train_<name>.yaml``) plus one line in ``rellm.systems``: stage 4
trains it, stage 5 answers with it, stage 6 and RESULTS.md (rows, models, commands) show it.
"""
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from scoring_fixtures import TINY_EPITOME_CONF, synthetic_system_outputs, tiny_encoder, write_responses

from rellm import systems as system_registry
from rellm.bin import epitome as epitome_bin
from rellm.bin import results as results_bin
from rellm.bin import score as score_bin
from rellm.scoring import metric_registry
from rellm.scoring.epitome import encoders
from rellm.utils.config import ConfigError, run_main
from rellm.utils.io import read_json, read_jsonl
from rellm.utils.stage import OptionsChangedError

REPO = Path(__file__).resolve().parents[2]
MINI_CONF = REPO / "egs" / "mini" / "conf"

# the one file of the worked example: the number of words of each response
TOY_METRIC = '''
from rellm.scoring.metric_registry import Metric


def response_length(record):
    return float(len((record.get("response") or "").split()))


METRIC = Metric(name="response_length", what="response length", column="resp. length (words)",
                per_utterance=response_length, utterance_key="response_length", scale=1, digits=2,
                describe="response length (toy): the number of words of each response",
                settings={"unit": "whitespace-separated words"})
'''


def text_encoder(name):
    """The tiny EPITOME encoder, with an embedding row for every id its tokenizer gives (the toy recipe's sentences
    have punctuation whose ids lie past ``vocab_size``)."""
    model, tokenizer = tiny_encoder()
    model.resize_token_embeddings(max(tokenizer.get_vocab().values()) + 1)
    return model, tokenizer


def scoring_recipe(root, monkeypatch, epitome_csv_dir):
    """``root`` as a recipe folder holding tiny trained EPITOME classifiers and the mini recipe's score.yaml."""
    monkeypatch.setattr(encoders, "load_text_encoder", text_encoder)
    monkeypatch.chdir(root)
    conf = root / "conf"
    conf.mkdir(exist_ok=True)
    epitome_conf = {**TINY_EPITOME_CONF, "cache_dir": str(root / "cache"), "data_dir": str(epitome_csv_dir),
                    "overwrite": False, "verify_checksums": False}
    (conf / "epitome.yaml").write_text(yaml.safe_dump(epitome_conf), encoding="utf-8")
    shutil.copy(MINI_CONF / "score.yaml", conf / "score.yaml")
    epitome_bin.main(["train", str(conf / "epitome.yaml")])
    return root


def test_a_metric_is_one_file_and_one_line(tmp_path, monkeypatch, epitome_csv_dir):
    root = scoring_recipe(tmp_path, monkeypatch, epitome_csv_dir)
    outputs = synthetic_system_outputs()
    for system, records in outputs.items():
        write_responses(root / "exp" / system / "official" / "seed1" / "infer" / "test" / "responses.jsonl", records)
    score = ["conf/score.yaml", "--systems", "text_only blsp_emo rellm", "--split", "official", "--seed", "1",
             "--test_set", "test", "--bootstrap_resamples", "200", "--prosody_baseline", "false"]
    out = Path(score_bin.main(score))
    assert "response_length" not in read_json(out / "metrics.json")["systems"]["rellm"]

    # the one file and the one line
    (tmp_path / "toy_length_metric.py").write_text(TOY_METRIC, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(metric_registry, "METRIC_MODULES", (*metric_registry.METRIC_MODULES, "toy_length_metric"))

    # its settings are in the scores' fingerprint: scores made without it are not handed back as they are
    with pytest.raises(OptionsChangedError, match="response_length"):
        score_bin.main(score)
    score_bin.main([*score, "--overwrite", "true"])
    metrics = read_json(out / "metrics.json")
    lengths = {s: [len(r["response"].split()) for r in records] for s, records in outputs.items()}
    for system in outputs:
        section = metrics["systems"][system]["response_length"]
        assert section == {"n": 60, "n_scored": 60, "mean": pytest.approx(np.mean(lengths[system]))}
    comp = metrics["comparisons"]["text_only"]["response_length"]
    assert comp["n_paired"] == 60 and comp["reference_mean"] > comp["baseline_mean"]  # RE-LLM's replies are longer
    assert 0 <= comp["wilcoxon"]["p_value"] < 0.01 and comp["bootstrap"]["n_resamples"] == 200
    per_utt = {line["utt_id"]: line for line in read_jsonl(out / "per_utt.jsonl")}
    first = outputs["rellm"][0]
    assert per_utt[first["utt_id"]]["systems"]["rellm"]["response_length"] == len(first["response"].split())
    # the metrics before it are unchanged, and its figure sits after them
    assert list(metrics["systems"]["rellm"])[-4:] == ["response_words", "response_length", "not_available",
                                                      "empty_responses"]

    results_bin.main(["conf/score.yaml", "--corpus", "mini", "--split", "official", "--seed", "1", "--test_sets",
                      "test", "--output", "RESULTS.md", "--command", "./run.sh --stage 6"])
    text = (root / "RESULTS.md").read_text(encoding="utf-8")
    header = next(line for line in text.splitlines() if line.startswith("| system | ER"))
    assert header.endswith("| resp. words (%) | resp. length (words) | same response (%) | n |")
    row = next(line for line in text.splitlines() if line.startswith("| RE-LLM |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert re.fullmatch(rf"{np.mean(lengths['rellm']):.2f} <sup>\*+t</sup><sup>\*+B</sup>",
                        cells[len(header.strip("|").split("|")) - 3])
    assert "- response length (toy): the number of words of each response" in text
    assert (f"  - response length {np.mean(lengths['rellm']) - np.mean(lengths['text_only']):+.2f} vs text-only "
            in text)
    summary = read_json(root / "exp" / "scores" / "summary.json")
    assert summary["test"]["rellm"]["response_length"]["mean"] == pytest.approx(np.mean(lengths["rellm"]))


@pytest.mark.slow
def test_a_system_is_a_config_and_one_line(toy_recipe, tmp_path, monkeypatch, epitome_csv_dir, capsys):
    from rellm.bin import infer, train

    root = scoring_recipe(tmp_path, monkeypatch, epitome_csv_dir)
    shutil.copy(MINI_CONF / "train_blsp_emo.yaml", root / "conf" / "train_toy_sys.yaml")  # the config
    exp = root / "exp" / "toy_sys" / "official" / "seed1"

    def infer_args(system, model_dir):
        return [str(MINI_CONF / "infer.yaml"), f"--system={system}", f"--model_dir={model_dir}",
                f"--manifest={toy_recipe / 'data' / 'valid.json'}", f"--feats_dir={toy_recipe / 'dump' / 'valid'}",
                f"--output_dir={model_dir / 'infer' / 'valid'}", f"--text_llm={toy_recipe / 'llm'}",
                "--response_max_new_tokens=4", "--ser_max_new_tokens=3", "--batch_size=4"]

    def answer(system, model_dir):
        run_main(infer.main, infer_args(system, model_dir))
        run_main(infer.main, [*infer_args(system, model_dir), "--merge=true"])
        return read_jsonl(model_dir / "infer" / "valid" / "responses.jsonl")

    with pytest.raises(ConfigError, match="--system must be one of text_only, blsp_emo, blsp_emo_ft, rellm, got "
                                          "'toy_sys'.*rellm/systems.py"):
        infer.main(infer_args("toy_sys", exp))

    # the one line
    toy = system_registry.System("toy_sys", "toy system", "toy", "T", "Toy", "speech", ("config",))
    monkeypatch.setattr(system_registry, "SYSTEMS", (*system_registry.SYSTEMS, toy))
    capsys.readouterr()  # what the EPITOME training printed
    system_registry.main(["names", "--training", "config"])
    assert capsys.readouterr().out.split() == ["blsp_emo", "blsp_emo_ft", "rellm", "toy_sys"]
    assert system_registry.main(["show", "toy_sys"]) == 0
    assert json.loads(capsys.readouterr().out)["train_config"] == "conf/train_toy_sys.yaml"

    # stage 4 trains it from its config (as stages.sh does for every name of --models), stage 5 answers with it
    args = {"ngpu": 0, "seed": 1, "data_dir": toy_recipe / "data", "feats_dir": toy_recipe / "dump",
            "responses_dir": toy_recipe / "responses", "train_set": "train", "valid_set": "valid",
            "exp_root": root / "exp", "split": "official", "output_folder": exp, "llm_name": toy_recipe / "llm",
            "lora_target_modules": "[q_proj, v_proj]", "noprogressbar": "true", "step1_epochs": 1, "step2_epochs": 1,
            "step1_batch_size": 4, "step2_batch_size": 4, "ckpt_interval_minutes": 0, "ser_turns": "false",
            "step1_ctc_epochs": 0, "llm_dtype": "float32", "precision": "fp32"}
    assert run_main(train.main, [system_registry.get("toy_sys").train_config,
                                 *[f"--{k}={v}" for k, v in args.items()]]) == 0
    records = answer("toy_sys", exp)
    assert len(records) == 8 and all(r["ser_pred"] for r in records)
    answer("text_only", root / "exp" / "text_only" / "official" / "seed1")

    # stage 6 scores it under its label, compared against the text-only LLM with its letter
    score_bin.main(["conf/score.yaml", "--systems", "text_only toy_sys", "--reference_system", "toy_sys",
                    "--split", "official", "--seed", "1", "--test_set", "valid", "--prosody_baseline", "false",
                    "--responses_dir", str(toy_recipe / "responses"), "--bootstrap_resamples", "100"])
    results_bin.main(["conf/score.yaml", "--corpus", "toy", "--split", "official", "--seed", "1", "--test_sets",
                      "valid", "--output", "RESULTS.md", "--command", "./run.sh"])
    text = (root / "RESULTS.md").read_text(encoding="utf-8")
    rows = [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| ")]
    assert rows.index("text-only LLM") < rows.index("toy system")  # table order: the registry's
    assert "- toy system vs text-only on 8 paired utterances:" in text
    # provenance: its models, and its stage-4 and stage-5 commands
    assert f"- toy_sys llm: {toy_recipe / 'llm'} (local folder; config.json sha256 " in text
    assert "python -m rellm.bin.train conf/train_toy_sys.yaml" in text
    assert "python -m rellm.bin.infer" in text and "--system=toy_sys" in text
