"""The fast mini run (egs/mini/conf/fast.yaml): stages 1-6 end to end, then its numbers are checked.

Marked ``slow``, not ``e2e``: ``make test`` (and so CI) runs it after the unit tests, so a stage that breaks
or a model that stops learning cannot land. The recipe runs from a folder of links to egs/mini (run.sh,
stages.sh, cmd.sh, path.sh, db.sh, utils, conf) under tmp, so every relative output (data_fast/, dump_fast/,
exp_fast/, downloads_fast/) lands there and nothing is written into the checkout. Offline, with a private $RELLM_CACHE
that links the real small models (the EPITOME classifiers train there, on synthetic annotations).

The thresholds leave a margin below what the fast run reaches (measured values in each assertion's comment)
and far above what a model that learned nothing gets (chance is 0.20 for 5 balanced emotions).
"""
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from recipe_env import private_cache_and_epitome

from rellm.data.emotions import EMOTIONS
from rellm.recipes.fast_run import run_sh_args
from rellm.testing.prerequisites import require_module

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "test" / "scoring"))
RECIPE = REPO / "egs" / "mini"
LINKED = ("run.sh", "stages.sh", "cmd.sh", "path.sh", "db.sh", "utils", "conf")
SPLIT, SEED = "official", 1
SYSTEMS = ("text_only", "blsp_emo", "blsp_emo_ft", "rellm")
# conf/fast.yaml: 20 sentences, 12/4/4 by sentence, x 5 styles x 2 voices; mini_asr 20 sentences (2 valid) x 2 voices
COUNTS = {"train": 120, "valid": 40, "test": 40}
STEP1_COUNTS = {"train": 36, "valid": 4}


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def train_log(model_dir):
    """``[(step, epoch, {"train_loss": value, "valid_ser_acc": value, ...})]`` from a stage-4 train_log.txt (SpeechBrain's FileTrainLogger)."""
    rows = []
    for line in (Path(model_dir) / "train_log.txt").read_text(encoding="utf-8").splitlines():
        step = re.search(r"step: (\w+)", line)
        epoch = re.search(r"epoch: (\d+)", line)
        if not (step and epoch):
            continue
        stats = {f"{part}_{k}": float(v) for part, k, v in re.findall(r"(train|valid) (\w+): ([-\d.e+]+)", line)}
        rows.append((step.group(1), int(epoch.group(1)), stats))
    return rows


@pytest.fixture(scope="module")
def fast_run(tmp_path_factory):
    require_module("espeakng_loader")
    root = tmp_path_factory.mktemp("mini_fast")
    private_cache_and_epitome(root)
    folder = root / "mini"
    folder.mkdir()
    for name in LINKED:
        (folder / name).symlink_to(RECIPE / name)
    env = {k: v for k, v in os.environ.items() if k not in ("BLSP_EMO", "QWEN_7B_CHAT", "LIBRISPEECH")}
    env.update(PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]), OMP_NUM_THREADS="1",
               RELLM_CMD_BACKEND="local", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               RELLM_CACHE=str(root / "cache"), RELLM_EPITOME_DIR=str(root / "epitome"),
               PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]))
    # the synthetic EPITOME CSVs are not the released ones: no checksum check
    args = run_sh_args(RECIPE / "conf" / "fast.yaml", more_args={"epitome_args": "--verify_checksums=false"})
    start = time.monotonic()
    result = subprocess.run(["./run.sh", *args], cwd=folder, env=env, capture_output=True, text=True, timeout=1800,
                            check=False)
    seconds = time.monotonic() - start
    print(f"fast mini run: {seconds:.0f} s")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return folder, result.stdout + result.stderr


@pytest.mark.e2e
def test_every_stage_wrote_its_outputs(fast_run):
    folder, log = fast_run
    assert "Successfully finished" in log
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [*LINKED, "data_fast", "dump_fast", "exp_fast", "downloads_fast"])  # nothing else, in particular no exp/
    # stage 1: manifests of the SER sets and of step 1's ASR sets
    data = folder / "data_fast"
    for s, n in COUNTS.items():
        manifest = json.loads((data / SPLIT / f"{s}.json").read_text())
        assert len(manifest) == n, s
        assert {v["emotion"] for v in manifest.values()} == set(EMOTIONS), s
    for s, n in STEP1_COUNTS.items():
        assert len(json.loads((data / "mini_asr" / f"{s}.json").read_text())) == n, s
    assert str(folder / "downloads_fast" / "mini") in (data / SPLIT / "data_root.txt").read_text()
    # stage 2: one cached utterance per manifest entry
    for name, counts in ((SPLIT, COUNTS), ("mini_asr", STEP1_COUNTS)):
        for s, n in counts.items():
            assert len(read_jsonl(folder / "dump_fast" / name / s / "index.jsonl")) == n, (name, s)
    exp = folder / "exp_fast"
    # stage 3: expected responses for the SER sets (a few may be dropped by the cleaning, counted in report.json)
    for s, n in COUNTS.items():
        records = read_jsonl(exp / "responses" / SPLIT / s / "expected.jsonl")
        assert 0.9 * n <= len(records) <= n, s
        report = json.loads((exp / "responses" / SPLIT / s / "report.json").read_text())
        assert report["tasks"]["expected"]["cleaning"]["kept"] == len(records)
    assert len(read_jsonl(exp / "responses" / "mini_asr" / "train" / "continuation.jsonl")) >= 0.9 * STEP1_COUNTS["train"]
    # stage 4: the three models trained to a final/ that stage 5 loads; RE-LLM and the matched control continued
    # from BLSP-Emo with the same step 2
    models = ("blsp_emo", "blsp_emo_ft", "rellm")
    for model in models:
        final = exp / model / SPLIT / f"seed{SEED}" / "final"
        assert (final / "model.json").is_file() and (final / "trainable.safetensors").is_file(), model
    steps = {model: [(step, epoch) for step, epoch, _ in train_log(exp / model / SPLIT / f"seed{SEED}")]
             for model in models}
    assert {step for step, _ in steps["blsp_emo"]} == {"step1_semantic", "step2_behaviour"}
    assert steps["blsp_emo_ft"] == steps["rellm"] and {step for step, _ in steps["rellm"]} == {"step2_behaviour"}
    # stage 5: one response and SER answer per test utterance, for each system
    for system in SYSTEMS:
        records = read_jsonl(exp / system / SPLIT / f"seed{SEED}" / "infer" / "test" / "responses.jsonl")
        assert len(records) == COUNTS["test"], system
        assert sum(bool(r["response"].strip()) for r in records) >= 0.9 * len(records), system
    # stage 6: metrics of every system and the RESULTS file
    metrics = json.loads((exp / "scores" / SPLIT / f"seed{SEED}" / "test" / "metrics.json").read_text())
    assert set(metrics["systems"]) == set(SYSTEMS)
    results = (exp / "RESULTS_fast.md").read_text()
    assert results.startswith("# RESULTS: mini") and "| RE-LLM |" in results and "| BLSP-Emo (fine-tuned) |" in results


@pytest.mark.e2e
def test_the_emotion_encoder_learned(fast_run):
    folder, _ = fast_run
    metrics = json.loads((folder / "exp_fast" / "emotion_encoder" / SPLIT / "metrics.json").read_text())
    assert metrics["train_utterances"] == COUNTS["train"] and metrics["valid_utterances"] == COUNTS["valid"]
    assert metrics["valid"]["ua"] >= 0.45, metrics["valid"]  # measured 0.70 (chance 0.20)
    assert metrics["valid"]["ccc_mean"] >= 0.5, metrics["valid"]  # measured 0.85


def _metrics(folder):
    return json.loads((folder / "exp_fast" / "scores" / SPLIT / f"seed{SEED}" / "test" / "metrics.json").read_text())


@pytest.mark.e2e
def test_the_teacher_follows_the_emotion_and_text_only_cannot(fast_run):
    folder, _ = fast_run
    metrics = _metrics(folder)
    teacher = metrics["response_emotion"]["teacher"]
    assert teacher["n"] >= 0.9 * COUNTS["test"]
    assert teacher["response_emotion"]["ua"] >= 0.8, teacher  # measured 0.95: the emotion openings
    # the text-only system reads only the transcript, which carries no emotion: about chance
    assert metrics["systems"]["text_only"]["response_emotion"]["ua"] <= 0.4  # measured 0.20
    # ... but it reads the words: its replies repeat the transcript's content words far above the chance level
    # (the other test sentences' words); measured 0.375 against 0.0 (the full mini run: 0.405 against 0.016)
    words = metrics["systems"]["text_only"]["response_words"]
    assert words["n_scored"] == COUNTS["test"] and words["recall"] >= 0.2, words
    assert words["recall"] >= words["recall_other_sentences"] + 0.15, words


@pytest.mark.e2e
def test_rellm_learned_from_the_audio(fast_run):
    folder, _ = fast_run
    rows = train_log(folder / "exp_fast" / "rellm" / SPLIT / f"seed{SEED}")
    behaviour = [stats for step, _, stats in rows if step == "step2_behaviour"]
    assert len(behaviour) == 2, rows
    first, last = behaviour
    assert last["train_loss"] < 0.8 * first["train_loss"], (first, last)  # measured 1.64 -> 0.66
    assert last["train_response"] < 0.9 * first["train_response"], (first, last)  # measured 0.67 -> 0.39
    # the emotion head on held-out speech (fused Whisper states + emotion embedding); chance 0.20, measured 0.78
    assert last["valid_ser_acc"] >= 0.55, last
    rellm = _metrics(folder)["systems"]["rellm"]
    assert rellm["ser"]["ua"] >= 0.45, rellm["ser"]  # stage 5's SER answers; measured 0.70
    # its responses follow the heard emotion (the transcript carries none): a model deaf to the audio opens every
    # reply alike (UA 0.20). Measured 0.75 in one run and 0.40 (sad and surprise always right) after the
    # fixed-batch and shuffled-encoder changes: a few minutes of training is not the demo's quality
    assert rellm["response_emotion"]["ua"] >= 0.3, rellm["response_emotion"]


def test_fast_config_is_run_sh_flags_with_its_own_roots():
    args = run_sh_args(RECIPE / "conf" / "fast.yaml", overrides={"nj": 3}, more_args={"epitome_args": "--x=1"})
    flags = dict(zip(args[::2], args[1::2]))
    # the flags of run.sh: the assignments of stages.sh above the line sourcing utils/parse_options.sh
    settings = RECIPE.joinpath("stages.sh").read_text().split(". utils/parse_options.sh")[0]
    assert all(re.search(rf"^{f[2:]}=", settings, re.MULTILINE) for f in flags), flags  # every key is a run.sh flag
    assert (flags["--datadir"], flags["--dumpdir"], flags["--expdir"]) == ("data_fast", "dump_fast", "exp_fast")
    assert flags["--results"].startswith("exp_fast/") and flags["--nj"] == "3"
    assert "--data_folder=downloads_fast/mini" in flags["--prepare_args"].split()
    assert "--data_folder=downloads_fast/mini_asr" in flags["--step1_prepare_args"].split()
    epitome = flags["--epitome_args"].split()
    assert epitome[-1] == "--x=1" and "--encoder_tag=minilm-l6-fast" in epitome  # never the real classifiers' cache


def test_fast_run_prints_the_command(capsys):
    from rellm.bin.fast_run import main

    assert main([str(RECIPE / "conf" / "fast.yaml"), "--print", "--stage", "4"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("./run.sh --datadir data_fast ") and out.rstrip().endswith("--stage 4")
    assert "--train_args '--step1_epochs=1 --step2_epochs=2 --step1_batch_size=2 --step2_batch_size=2 "\
           "--noprogressbar=true'" in out
