"""Stage 4 and the EPITOME classifiers follow one warm-up/decay schedule, each with the numbers it had before."""
import pytest
import torch

from rellm.training.checkpointing import WarmupDecayLR
from rellm.utils.lr_schedule import warmup_decay

CASES = [(3e-5, 0, 7), (2e-5, 3, 40), (1e-4, 12, 120), (5e-5, 7, 8), (1e-3, 4, 10)]


def _epitome_lrs(lr, warmup, total_steps):
    """The learning rate of every optimizer step as the EPITOME training loop sets it (LambdaLR over AdamW)."""
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_decay(step, warmup, total_steps))
    lrs = []
    for _ in range(total_steps + 2):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_the_shape():
    # warm-up 4 then decay over 6 steps, at the peak 1e-3: (step + 1) / 4, then (10 - step) / 6
    values = [WarmupDecayLR(1e-3, 4, 10).value(step) for step in range(12)]
    assert values == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 5e-3 / 6, 4e-3 / 6, 3e-3 / 6, 2e-3 / 6,
                                    1e-3 / 6, 0.0, 0.0], rel=1e-12)
    assert WarmupDecayLR(1e-3, 2, None).value(50) == 1e-3  # no total: constant after the warm-up
    assert warmup_decay(0, 0, 5) == 1.0 and warmup_decay(4, 0, 5) == pytest.approx(0.2)  # no warm-up


@pytest.mark.parametrize(("lr", "warmup", "total"), CASES)
def test_each_trainer_keeps_its_former_numbers_bit_for_bit(lr, warmup, total):
    steps = range(total + 2)
    # stage 4 before the shared function: lr * (step + 1) / warmup, then lr * remaining fraction
    former_stage4 = [lr * (s + 1) / warmup if warmup > 0 and s < warmup
                     else lr * (max(total - s, 0) / max(total - warmup, 1)) for s in steps]
    assert [WarmupDecayLR(lr, warmup, total).value(s) for s in steps] == former_stage4
    # EPITOME before: a LambdaLR factor (step + 1) / warmup, then max(0, (total - step) / (total - warmup))
    former_factor = [(s + 1) / warmup if s < warmup else max(0.0, (total - s) / max(1, total - warmup)) for s in steps]
    assert _epitome_lrs(lr, warmup, total) == [lr * f for f in former_factor]
    # and the two trainers agree with each other up to the rounding of the last bit
    assert _epitome_lrs(lr, warmup, total) == pytest.approx(former_stage4, rel=1e-15, abs=0)
