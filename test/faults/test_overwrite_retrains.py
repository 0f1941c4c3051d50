"""``--overwrite=true`` really redoes stage 4: the old checkpoints are set aside and the new run starts from its
initialisation, so its weights equal a fresh run's with the new options; rebuilt inputs (teacher responses) make a
finished experiment stale until it is retrained."""
import json
import shutil
import signal

import torch
from fault_helpers import run_module
from test_training_kill import _args

from rellm.models.final_state import load_final_state


def _weights(folder):
    return load_final_state(folder)[0]


def _equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_overwrite_retrains_from_the_initialisation_and_changed_responses_make_it_stale(toy_recipe, tmp_path):
    recipe = tmp_path / "recipe"
    shutil.copytree(toy_recipe, recipe, symlinks=True)  # the session fixture stays untouched
    fast = {"step1_epochs": 0, "step2_epochs": 2}
    out = tmp_path / "exp" / "rellm" / "toy" / "seed1"
    assert run_module("rellm.bin.train", _args(recipe, out, **fast)).returncode == 0
    old = _weights(out)

    fresh = tmp_path / "fresh" / "rellm" / "toy" / "seed1"
    proc = run_module("rellm.bin.train", _args(recipe, fresh, **fast, step2_lr=3e-3))
    assert proc.returncode == 0, proc.stderr[-3000:]

    # other options without --overwrite: refused, nothing touched
    proc = run_module("rellm.bin.train", _args(recipe, out, **fast, step2_lr=3e-3))
    assert proc.returncode != 0 and "with other options (step2_lr" in proc.stderr, proc.stderr[-3000:]
    assert _equal(_weights(out), old)

    # --overwrite: the earlier run's checkpoints are set aside, not restored; the result is the fresh run's
    proc = run_module("rellm.bin.train", _args(recipe, out, **fast, step2_lr=3e-3, overwrite="true"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "--overwrite: training from the initialisation" in proc.stderr
    assert "step2_behaviour: no checkpoint, starting at optimizer step 0" in proc.stderr
    assert "step2_behaviour: 8 optimizer step(s) in this run, 8 in all" in proc.stderr
    new = _weights(out)
    assert _equal(new, _weights(fresh)) and not _equal(new, old)
    assert not (out / ".replaced").exists()  # removed once the new final/ was written

    # the teacher's responses re-made (another teacher): the finished experiment is stale, named, until retrained
    responses = recipe / "responses" / "train" / "expected.jsonl"
    records = [json.loads(line) for line in responses.read_text().splitlines()]
    records[0]["output"] = "That sounds hard. Do you want to talk about it?"
    responses.write_text("".join(json.dumps(r) + "\n" for r in records))
    proc = run_module("rellm.bin.train", _args(recipe, out, **fast, step2_lr=3e-3))
    assert proc.returncode != 0
    assert "is out of date: its input 'train_responses'" in proc.stderr and str(responses) in proc.stderr
    assert "./run.sh --stage 4 --overwrite true" in proc.stderr
    assert _equal(_weights(out), new)
    proc = run_module("rellm.bin.train", _args(recipe, out, **fast, step2_lr=3e-3, overwrite="true"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not _equal(_weights(out), new)
    proc = run_module("rellm.bin.train", _args(recipe, out, **fast, step2_lr=3e-3))
    assert proc.returncode == 0 and "already trained with these options" in proc.stderr


def test_an_interrupted_overwrite_resumes_its_own_run_not_the_replaced_one(toy_recipe, tmp_path):
    recipe = tmp_path / "recipe"
    shutil.copytree(toy_recipe, recipe, symlinks=True)
    fast = {"step1_epochs": 0, "step2_epochs": 2}
    out = tmp_path / "exp" / "rellm" / "toy" / "seed1"
    assert run_module("rellm.bin.train", _args(recipe, out, **fast)).returncode == 0
    old = _weights(out)
    # the overwriting run is killed after its 3rd checkpoint: the old weights are still on disk, set aside
    proc = run_module("rellm.bin.train", _args(recipe, out, **fast, step2_lr=3e-3, overwrite="true"),
                      fault="checkpoint_saved/step2_behaviour@3")
    assert proc.returncode == -signal.SIGKILL
    assert _equal(load_final_state(out / ".replaced")[0], old)
    # without --overwrite the re-run sees its own run in save/ and resumes it at step 3
    proc = run_module("rellm.bin.train", _args(recipe, out, **fast, step2_lr=3e-3))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "step2_behaviour: 5 optimizer step(s) in this run, 8 in all" in proc.stderr
    fresh = tmp_path / "fresh" / "rellm" / "toy" / "seed1"
    assert run_module("rellm.bin.train", _args(recipe, fresh, **fast, step2_lr=3e-3)).returncode == 0
    assert _equal(_weights(out), _weights(fresh))
    assert not (out / ".replaced").exists()
