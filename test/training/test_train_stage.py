"""Stage 4 end to end on toy data: experiment folder, checkpoints, init_from, exact resume, DDP."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rellm.bin import train as train_stage
from rellm.models.final_state import load_final_state
from rellm.training import brain as brain_module
from rellm.utils.safe_state import load_state

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "egs" / "mini" / "conf"


def _args(root, model, out, **extra):
    args = {
        "ngpu": 0, "seed": 1, "data_dir": root / "data", "feats_dir": root / "dump", "responses_dir": root / "responses",
        "train_set": "train", "valid_set": "valid", "exp_root": out.parents[2], "split": "toy", "output_folder": out,
        "llm_name": root / "llm", "lora_target_modules": "[q_proj, v_proj]", "noprogressbar": "true",
        "step1_epochs": 1, "step2_epochs": 2, "step1_batch_size": 2, "step2_batch_size": 2, "ckpt_interval_minutes": 0,
        "ser_turns": "false",  # the mini config's SER turns add items: the step counts below assume none
        "step1_ctc_epochs": 0,  # the mini config's CTC warm-up: tested where asked for
        # the mini config's "fast" trains in bf16 on CPUs with hardware bf16: fp32 here, so that the figures below
        # do not depend on the CPU; "fast" is tested where asked for
        "llm_dtype": "float32", "precision": "fp32",
    }
    args.update(extra)
    return [str(CONF / f"train_{model}.yaml")] + [f"--{k}={v}" for k, v in args.items()]


def _final(folder):
    return load_final_state(folder)[0]


@pytest.mark.slow
def test_blsp_emo_then_rellm_from_it(toy_recipe, tmp_path):
    blsp = tmp_path / "blsp_emo" / "toy" / "seed1"
    assert train_stage.main(_args(toy_recipe, "blsp_emo", blsp)) == 0
    for name in ("hyperparams.yaml", "env.log", "log.txt", "train_log.txt", "final/model.json", "final/trainable.safetensors",
                 "save/step1_semantic/data_report.json"):
        assert (blsp / name).is_file(), name
    log = (blsp / "train_log.txt").read_text()
    assert "step: step1_semantic, epoch: 1" in log and "step: step2_behaviour, epoch: 2" in log
    assert "effective batch" in (blsp / "log.txt").read_text()

    # Checkpoints hold only the trainable parameters and the base-model ids.
    (ckpt,) = (blsp / "save" / "step2_behaviour").glob("CKPT+*")
    saved = load_state(ckpt / "model.ckpt")  # safetensors + JSON: loading it runs no code
    assert saved["base_models"]["llm"] == str(toy_recipe / "llm")
    params = saved["parameters"]
    assert all(k.startswith(("adapter.", "emotion_head.", "avd_head.")) or "lora_" in k for k in params)
    assert not any("embed_tokens" in k or k.endswith(("q_proj.weight", "q_proj.base_layer.weight")) for k in params)
    assert not list((blsp / "save").rglob(".staging-*"))

    # A finished run is skipped.
    mtime = (blsp / "final" / "trainable.safetensors").stat().st_mtime
    assert train_stage.main(_args(toy_recipe, "blsp_emo", blsp)) == 0
    assert (blsp / "final" / "trainable.safetensors").stat().st_mtime == mtime

    # RE-LLM starts from BLSP-Emo (the default init_from): no semantic step, fused adapter expanded.
    rellm = tmp_path / "rellm" / "toy" / "seed1"
    assert train_stage.main(_args(toy_recipe, "rellm", rellm, step2_epochs=1)) == 0
    assert not (rellm / "save" / "step1_semantic").exists()
    log = (rellm / "train_log.txt").read_text()
    assert "avd_mse" in log
    state = _final(rellm)
    assert state["adapter.convs.0.weight"].shape[1] == 24 + 8  # speech_dim + emotion_dim, read from the cache

    from rellm.models.speech_llm import SpeechLLM

    model = SpeechLLM.from_pretrained_dir(rellm)
    assert model.emotion_dim == 8 and model.prompts["behaviour_instruction"].startswith("Continue")
    # what respond_audio reads: BLSP-Emo (lambda_dim 0, no nuance module) trained no A/V/D head, RE-LLM did
    trained = {name: json.loads((folder / "final" / "model.json").read_text())["avd_head_trained"]
               for name, folder in (("blsp_emo", blsp), ("rellm", rellm))}
    assert trained == {"blsp_emo": False, "rellm": True}


class _Killed(Exception):
    pass


@pytest.mark.slow
def test_killed_and_resumed_run_equals_uninterrupted(toy_recipe, tmp_path, monkeypatch):
    extra = {"init_from": "null", "ckpt_interval_steps": 1, "lora_dropout": 0.3}  # dropout: RNG must be restored
    full = tmp_path / "full" / "toy" / "seed1"
    assert train_stage.main(_args(toy_recipe, "rellm", full, **extra)) == 0

    original = brain_module.AlignBrain.on_fit_batch_end

    def kill_mid_step2(self, batch, outputs, loss, should_step):
        original(self, batch, outputs, loss, should_step)
        if self.hparams.step == "behaviour" and self.optimizer_step == 3:
            raise _Killed  # after 3 optimizer steps of step 2; the last checkpoint is from step 2

    resumed = tmp_path / "resumed" / "toy" / "seed1"
    monkeypatch.setattr(brain_module.AlignBrain, "on_fit_batch_end", kill_mid_step2)
    with pytest.raises(_Killed):
        train_stage.main(_args(toy_recipe, "rellm", resumed, **extra))
    assert not (resumed / "final").exists()
    assert list((resumed / "save" / "step2_behaviour").glob("CKPT+*"))
    monkeypatch.setattr(brain_module.AlignBrain, "on_fit_batch_end", original)
    assert train_stage.main(_args(toy_recipe, "rellm", resumed, **extra)) == 0

    a, b = _final(full), _final(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert (full / "train_log.txt").read_text().count("step2_behaviour") == 2


@pytest.mark.slow
def test_torchrun_two_processes_on_cpu(toy_recipe, tmp_path):
    out = tmp_path / "ddp" / "toy" / "seed1"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "rellm.bin.train",
           *_args(toy_recipe, "blsp_emo", out, step2_epochs=1)]
    proc = subprocess.run(cmd, check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "final" / "trainable.safetensors").is_file()
    log = (out / "log.txt").read_text()
    assert "2 device(s)" in log


@pytest.mark.slow
def test_step1_on_asr_data_and_avd_loss_without_the_emotion_embedding(toy_recipe, tmp_path):
    from rellm.testing.toy_recipe import write_toy_recipe_data

    # 6 s or more: enough adapter frames for CTC to align the toy transcripts' tokens
    asr = write_toy_recipe_data(tmp_path / "asr", num_utts=6, sets=("asr_train", "asr_valid"), seed=7, min_duration=6.0)
    out = tmp_path / "blsp_emo" / "toy" / "seed1"
    # BLSP-Emo with an A/V/D loss (emotion_dim 0, lambda_dim 1): the head trains on the pooled adapter output
    extra = {"step1_data_dir": asr / "data", "step1_feats_dir": asr / "dump", "step1_responses_dir": asr / "responses",
             "step1_train_set": "asr_train", "step1_valid_set": "asr_valid", "lambda_dim": 1.0, "step2_epochs": 1,
             "step1_ctc_epochs": 2}
    assert train_stage.main(_args(toy_recipe, "blsp_emo", out, **extra)) == 0
    # the CTC warm-up ran on step 1's data before step 1, and left its adapter and marker
    log = (out / "train_log.txt").read_text()
    assert "step: step0_ctc, epoch: 2" in log and log.index("step0_ctc") < log.index("step1_semantic")
    assert (out / "save" / "step0_ctc" / "adapter.safetensors").is_file()
    step1 = json.loads((out / "save" / "step1_semantic" / "data_report.json").read_text())
    step2 = json.loads((out / "save" / "step2_behaviour" / "data_report.json").read_text())
    assert step1["train_set"] == "asr_train" and step1["data_dir"] == str(asr / "data")
    assert step1["train"]["kept"] == 6 and step2["train_set"] == "train" and step2["train"]["kept"] == 8
    assert step2["train"]["avd_target"] == {"avd_source": "auto", "annotation": 8, "encoder": 0}
    assert "avd_mse" in (out / "train_log.txt").read_text()
    final = json.loads((out / "final" / "model.json").read_text())
    assert final["avd_head_trained"] is True
    # the toy cache records no shortened window: the model says it was trained on Whisper's full 30 s
    assert final["speech_features"]["whisper_window_seconds"] == 30.0


@pytest.mark.slow
@pytest.mark.parametrize("flags", [
    {"emotion_dim": 0, "emotion_encoder": "null"},  # A/V/D loss without the emotion embedding
    {"fusion_init": "expand", "response_loss": "kl", "train_emotion_head": "false", "lambda_cat": 0,
     "ser_turns": "false"},
])
def test_rellm_ablations_train_from_blsp_emo(toy_recipe, tmp_path, flags):
    blsp = tmp_path / "blsp_emo" / "toy" / "seed1"
    assert train_stage.main(_args(toy_recipe, "blsp_emo", blsp, step1_epochs=0, step2_epochs=1)) == 0
    out = tmp_path / "rellm" / "toy" / "seed1"
    assert train_stage.main(_args(toy_recipe, "rellm", out, step2_epochs=1, **flags)) == 0
    state, source = _final(out), _final(blsp)
    assert not torch.equal(state["avd_head.proj.weight"], source["avd_head.proj.weight"])  # the A/V/D head trained
    if flags.get("train_emotion_head") == "false":
        assert torch.equal(state["emotion_head.proj.weight"], source["emotion_head.proj.weight"])  # frozen
    if flags.get("emotion_dim") == 0:
        assert state["adapter.convs.0.weight"].shape == source["adapter.convs.0.weight"].shape


@pytest.mark.slow
def test_ser_turns_train_alongside_the_expected_responses(toy_recipe, tmp_path):
    """ser_turns (the mini recipe's option): SER question/answer items join step 2 and are counted."""
    out = tmp_path / "blsp_emo" / "toy" / "seed1"
    assert train_stage.main(_args(toy_recipe, "blsp_emo", out, step1_epochs=0, step2_epochs=1, ser_turns="true",
                                  ser_turn_fraction=1.0)) == 0
    report = json.loads((out / "save" / "step2_behaviour" / "data_report.json").read_text())
    assert report["train"]["ser_turns"] == report["train"]["kept"] == 8
    log = (out / "train_log.txt").read_text()
    assert "optimizer_steps: 8" in log  # 16 items in batches of 2


def _train_losses(folder):
    """``{(step, epoch): train loss}`` from train_log.txt."""
    found = re.findall(r"step: (\w+), epoch: (\d+).*? - train loss: ([-+.\de]+)", (folder / "train_log.txt").read_text())
    return {(step, int(epoch)): float(loss) for step, epoch, loss in found}


@pytest.mark.slow
def test_fast_precision_trains_in_bf16_where_the_cpu_has_hardware_bf16(toy_recipe, tmp_path, monkeypatch):
    """``llm_dtype: fast`` / ``precision: fast`` (the mini recipe's): on a CPU with hardware bf16 the frozen LLM
    is held in bf16 and the step runs under bf16 autocast (1.6x faster there); the losses are fp32 training's
    within bf16 rounding, and the trained model loads back. The CPU test is patched in, so this runs anywhere."""
    from rellm.utils import torch_device

    runs = {}
    for name, native in (("fp32", False), ("fast", True)):
        monkeypatch.setattr(torch_device, "cpu_bf16_native", lambda native=native: native)
        out = tmp_path / "blsp_emo" / "toy" / name
        assert train_stage.main(_args(toy_recipe, "blsp_emo", out, step2_epochs=1, llm_dtype="fast",
                                      precision="fast")) == 0
        runs[name] = out
    assert "precision bf16" in (runs["fast"] / "log.txt").read_text()
    assert "precision fp32" in (runs["fp32"] / "log.txt").read_text()
    assert "llm_dtype: bfloat16" in (runs["fast"] / "hyperparams.yaml").read_text()
    fp32, fast = _train_losses(runs["fp32"]), _train_losses(runs["fast"])
    assert set(fp32) == set(fast) == {("step1_semantic", 1), ("step2_behaviour", 1)}
    for key in fp32:
        assert fast[key] == pytest.approx(fp32[key], rel=0.05), key

    from rellm.models.speech_llm import SpeechLLM

    model = SpeechLLM.from_pretrained_dir(runs["fast"], dtype=torch.float32)
    assert next(model.base_llm.parameters()).dtype == torch.float32  # a bf16-trained model loads in any dtype
