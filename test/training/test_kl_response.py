"""Stage 4 with ``response_loss: kl``: step 2 trains against the emotion-labelled text LLM's soft targets."""
import re
from pathlib import Path

import pytest
import torch

from rellm.bin import train as train_stage
from rellm.models.final_state import load_final_state

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "egs" / "mini" / "conf"


def _args(root, out, **extra):
    args = {
        "ngpu": 0, "seed": 1, "data_dir": root / "data", "feats_dir": root / "dump", "responses_dir": root / "responses",
        "train_set": "train", "valid_set": "valid", "exp_root": out.parents[2], "split": "toy", "output_folder": out,
        "llm_name": root / "llm", "lora_target_modules": "[q_proj, v_proj]", "noprogressbar": "true",
        "step1_epochs": 0, "step2_epochs": 4, "step2_batch_size": 4, "ckpt_interval_minutes": 0, "init_from": "null",
    }
    args.update(extra)
    return [str(CONF / "train_rellm.yaml")] + [f"--{k}={v}" for k, v in args.items()]


def _responses(log, split):
    return [float(v) for v in re.findall(rf"{split} response: ([0-9.e+-]+)", log)]


@pytest.mark.slow
def test_kl_response_loss_trains(toy_recipe, tmp_path):
    kl = tmp_path / "kl" / "toy" / "seed1"
    assert train_stage.main(_args(toy_recipe, kl, response_loss="kl", step2_lr=2e-2, lambda_cat=0, lambda_dim=0,
                                    ser_turns="false")) == 0  # SER answers have no text-LLM distribution (CE only)
    train = _responses((kl / "train_log.txt").read_text(), "train")
    assert len(train) == 4 and all(v >= 0 for v in train)
    assert train[-1] < 0.8 * train[0], train  # the soft KL to the teacher goes down
    ce = tmp_path / "ce" / "toy" / "seed1"
    assert train_stage.main(_args(toy_recipe, ce, response_loss="ce", step2_lr=5e-3, step2_epochs=1)) == 0
    ce_first = _responses((ce / "train_log.txt").read_text(), "train")[0]
    assert train[0] < ce_first / 2  # a KL (to a teacher sharing the frozen LLM), not the token CE (~ln V)
    state = load_final_state(kl)[0]
    assert all(torch.isfinite(v).all() for v in state.values())


@pytest.mark.slow
def test_kl_at_the_released_positions_trains_with_the_released_target_end(toy_recipe, tmp_path):
    """``kl_positions: targets`` (the released response_kl) with ``target_end: released``: the KL rows are the target
    tokens' own positions, the ``<|endoftext|>`` one included; the loss still goes down and nothing is non-finite."""
    out = tmp_path / "kl_targets" / "toy" / "seed1"
    assert train_stage.main(_args(toy_recipe, out, response_loss="kl", step2_lr=2e-2, lambda_cat=0, lambda_dim=0,
                                  ser_turns="false", kl_positions="targets", target_end="released")) == 0
    train = _responses((out / "train_log.txt").read_text(), "train")
    assert len(train) == 4 and all(v >= 0 for v in train)
    assert train[-1] < 0.8 * train[0], train
    assert all(torch.isfinite(v).all() for v in load_final_state(out)[0].values())
