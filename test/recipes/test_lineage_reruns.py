"""A researcher reruns part of a finished recipe (the IEMOCAP dry run on fixture corpora): every stage below the
rerun one stops, naming what changed, until it is redone with ``--overwrite true``, which really redoes it. So a
RESULTS.md never mixes outputs made from old and new inputs."""
import subprocess
import time

import pytest
import torch
from test_dry_run import dry_env, run_recipe  # noqa: F401  (dry_env: the module's fixture)

from rellm.models.final_state import load_final_state

pytestmark = pytest.mark.e2e


def _run(folder, env, *args):
    result = subprocess.run(["./run.sh", "--dry_run", "true", "--epitome_args", "--verify_checksums=false", *args],
                            cwd=folder, env=env, capture_output=True, text=True, timeout=1200, check=False)
    return result.returncode, result.stdout + result.stderr


def _weights(folder):
    return load_final_state(folder)[0]


def _differ(a, b):
    return any(not torch.equal(a[k], b[k]) for k in a)


def test_reruns_stop_below_a_redone_stage_until_overwritten(dry_env):  # noqa: F811
    root, env = dry_env
    folder, _, _ = run_recipe(root, env, "iemocap")
    exp = folder / "exp_dry"
    rellm = exp / "rellm" / "fold5" / "seed1"
    first_rellm, first_blsp = _weights(rellm), _weights(exp / "blsp_emo" / "fold5" / "seed1")
    results = folder / "exp_dry" / "RESULTS_dry_run.md"
    results_before = results.read_text()

    # 1. stage 3 again with another teacher option: it needs --overwrite true itself, and redoes the responses
    teacher = ("--respond_args", "--max_new_tokens=10")
    code, log = _run(folder, env, "--stage", "3", "--stop_stage", "3", *teacher)
    assert code != 0 and "with other options (max_new_tokens: 12 -> 10)" in log, log[-3000:]
    code, log = _run(folder, env, "--stage", "3", "--stop_stage", "3", "--overwrite", "true", *teacher)
    assert code == 0, log[-3000:]

    # 2. stage 4 (and all after it) without --overwrite: stops before any work, naming the changed responses
    code, log = _run(folder, env, "--stage", "4", *teacher)
    assert code != 0, log[-3000:]
    assert "is out of date: its input 'train_responses'" in log and "exp_dry/responses/fold5/train" in log, log[-3000:]
    assert "Redo it: ./run.sh --stage 4 --overwrite true" in log
    assert results.read_text() == results_before  # no RESULTS.md from a mix of old and new outputs
    # ... and stage 6 alone, which would show the new teacher row beside models trained on the old responses
    code, log = _run(folder, env, "--stage", "6", *teacher)
    assert code != 0 and "cannot be made from the current outputs" in log and "'train_responses'" in log, log[-3000:]

    # 3. with --overwrite true stage 4 retrains from the initialisation: other weights
    code, log = _run(folder, env, "--stage", "4", "--stop_stage", "4", "--overwrite", "true", *teacher)
    assert code == 0, log[-3000:]
    assert _differ(_weights(rellm), first_rellm) and _differ(_weights(exp / "blsp_emo" / "fold5" / "seed1"), first_blsp)

    # 4. one level down: stage 5 after the retrained stage 4 stops naming the model, then is redone
    code, log = _run(folder, env, "--stage", "5", *teacher)
    assert code != 0 and "is out of date: its input 'model'" in log and "exp_dry/blsp_emo/fold5/seed1" in log, \
        log[-3000:]
    answers = rellm / "infer" / "test" / "responses.jsonl"
    answered = answers.stat().st_mtime_ns
    time.sleep(1)
    code, log = _run(folder, env, "--stage", "5", "--overwrite", "true", *teacher)
    assert code == 0, log[-3000:]
    assert answers.stat().st_mtime_ns != answered
    assert results.read_text() != results_before
    # a finished, current recipe re-runs without --overwrite and redoes nothing
    answered = answers.stat().st_mtime_ns
    code, log = _run(folder, env, "--stage", "2", *teacher)
    assert code == 0, log[-3000:]
    assert "already trained with these options" in (rellm / "train.log").read_text()
    assert answers.stat().st_mtime_ns == answered

    # 5. stage 2a retrained (another seed): stage 2's features stop naming the emotion encoder, then are redone
    encoder_args = ("--emotion_encoder_args", "--seed=2")
    code, log = _run(folder, env, "--stage", "2", "--stop_stage", "2", "--emotion_encoder_args",
                     "--seed=2 --overwrite=true", *teacher)
    assert code != 0 and "is out of date: its input 'emotion_encoder'" in log and \
        "exp_dry/emotion_encoder/fold5" in log, log[-3000:]
    code, log = _run(folder, env, "--stage", "2", "--stop_stage", "2", "--overwrite", "true", *encoder_args, *teacher)
    assert code == 0, log[-3000:]
    # ... and then stage 4, which reads those features, is out of date in turn
    code, log = _run(folder, env, "--stage", "4", "--stop_stage", "4", *encoder_args, *teacher)
    assert code != 0 and "'train_features'" in log, log[-3000:]
