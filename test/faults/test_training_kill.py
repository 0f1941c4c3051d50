"""Stage 4 killed with SIGKILL during step 2 (after a checkpoint, then while writing one) resumes where it stopped
and ends with the weights of an uninterrupted run; a NaN loss stops it with the last good checkpoint kept."""
import re
import signal
from pathlib import Path

import torch
import yaml
from fault_helpers import run_module

from rellm.models.final_state import load_final_state
from rellm.testing.toy_recipe import read_feature_cache, write_feature_cache
from rellm.utils.safe_state import load_state

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "egs" / "mini" / "conf"
KILLED = -signal.SIGKILL


def _args(root, out, **extra):
    args = {
        "ngpu": 0, "seed": 1, "data_dir": root / "data", "feats_dir": root / "dump", "responses_dir": root / "responses",
        "train_set": "train", "valid_set": "valid", "exp_root": out.parents[2], "split": "toy", "output_folder": out,
        "llm_name": root / "llm", "lora_target_modules": "[q_proj, v_proj]", "noprogressbar": "true",
        "step1_epochs": 1, "step2_epochs": 2, "step1_batch_size": 2, "step2_batch_size": 2, "ckpt_interval_minutes": 0,
        "ser_turns": "false",  # the mini config's SER turns add items: the step counts below assume none
        "init_from": "null", "ckpt_interval_steps": 1, "lora_dropout": 0.3,  # dropout: the RNG state must be restored
    }
    args.update(extra)
    return [CONF / "train_rellm.yaml"] + [f"--{k}={v}" for k, v in args.items()]


def _checkpoints(out):
    return sorted((out / "save" / "step2_behaviour").glob("CKPT+*"))


def _newest(out):
    """The checkpoint a resume picks (a kill between saving one and deleting the older ones leaves both)."""
    return max(_checkpoints(out), key=lambda c: yaml.safe_load((c / "CKPT.yaml").read_text())["unixtime"])


def _optimizer_step(ckpt):
    return yaml.safe_load((ckpt / "brain.ckpt").read_text())["optimizer_step"]


def test_sigkill_after_a_checkpoint_and_during_a_write_resumes_to_the_uninterrupted_weights(toy_recipe, tmp_path):
    full = tmp_path / "full" / "toy" / "seed1"
    proc = run_module("rellm.bin.train", _args(toy_recipe, full))
    assert proc.returncode == 0, proc.stderr[-3000:]

    out = tmp_path / "killed" / "toy" / "seed1"
    # 1. killed right after the 3rd checkpoint of step 2 (optimizer step 3 of 8)
    proc = run_module("rellm.bin.train", _args(toy_recipe, out), fault="checkpoint_saved/step2_behaviour@3")
    assert proc.returncode == KILLED, proc.stderr[-3000:]
    assert not (out / "final").exists() and not (out / ".done.train").exists()
    assert _optimizer_step(_newest(out)) == 3

    # 2. resumed, then killed while writing its 3rd checkpoint (step 5): files written, folder not yet in place
    proc = run_module("rellm.bin.train", _args(toy_recipe, out), fault="checkpoint_staged/step2_behaviour@3")
    assert proc.returncode == KILLED, proc.stderr[-3000:]
    assert re.search(r"step2_behaviour: resumed from \S+ at optimizer step 3 ", proc.stderr), proc.stderr[-3000:]
    assert "step1_semantic: resumed from" in proc.stderr  # the finished step 1 is not redone
    assert "step1_semantic, epoch: 1" not in proc.stderr
    staged = list((out / "save" / "step2_behaviour").glob(".staging-CKPT+*"))
    assert len(staged) == 1 and _optimizer_step(staged[0]) == 5
    previous = _newest(out)  # the checkpoint before the interrupted write survived, complete
    assert _optimizer_step(previous) == 4
    assert load_state(previous / "model.ckpt")["parameters"]

    # 3. the clean re-run throws the half-written one away and resumes from step 4
    proc = run_module("rellm.bin.train", _args(toy_recipe, out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "removing the incomplete checkpoint" in proc.stderr
    assert re.search(r"step2_behaviour: resumed from \S+ at optimizer step 4 ", proc.stderr), proc.stderr[-3000:]
    # only the missing steps ran (a restart from scratch would run all 8, and step 1's 4 again)
    assert "step2_behaviour: 4 optimizer step(s) in this run, 8 in all" in proc.stderr, proc.stderr[-3000:]
    assert "step1_semantic: 0 optimizer step(s) in this run" in proc.stderr
    assert not list((out / "save").rglob(".staging-*"))
    a, b = load_final_state(full)[0], load_final_state(out)[0]
    assert a.keys() == b.keys() and len(a) > 10
    for k in a:
        assert torch.equal(a[k], b[k]), k

    # 4. a finished run is skipped
    proc = run_module("rellm.bin.train", _args(toy_recipe, out))
    assert proc.returncode == 0 and "already trained with these options" in proc.stderr


def test_nan_loss_stops_with_the_batch_named_and_the_last_good_checkpoint_kept(toy_recipe, tmp_path):
    """Killed after step 2's 2nd checkpoint; the features then turn NaN: the resumed run stops at the next batch,
    before any optimizer step on it, names it and the checkpoint it keeps."""
    import shutil

    root = tmp_path / "recipe"
    shutil.copytree(toy_recipe, root, ignore=shutil.ignore_patterns("llm"))
    out = tmp_path / "nan" / "toy" / "seed1"
    args = [str(a).replace(str(toy_recipe / "dump"), str(root / "dump")) for a in _args(toy_recipe, out, step1_epochs=0)]
    proc = run_module("rellm.bin.train", args, fault="checkpoint_saved/step2_behaviour@2")
    assert proc.returncode == KILLED, proc.stderr[-3000:]
    good = _newest(out)
    feats_dir = root / "dump" / "train"
    feats = read_feature_cache(feats_dir)
    for utt in feats:
        feats[utt]["whisper"][0, 0] = float("nan")
    write_feature_cache(feats_dir, feats)

    proc = run_module("rellm.bin.train", args)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert re.match(r"ERROR: step2_behaviour: the loss is nan at batch 3 \(optimizer step 2; utterances train_utt\d+, "
                    r"train_utt\d+\); training stopped and the last good checkpoint is " + re.escape(str(good)), last), last
    assert good in _checkpoints(out) and _optimizer_step(good) == 2
    params = load_state(good / "model.ckpt")["parameters"]
    assert all(torch.isfinite(v).all() for v in params.values())
    assert not (out / "final").exists() and not (out / ".done.train").exists()
