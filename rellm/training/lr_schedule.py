"""The learning-rate shape of stage 4 and of the EPITOME classifiers: linear warm-up, then linear decay to 0.

(DeepSpeed's WarmupDecayLR shape with a linear warm-up; docs/method.md#hyperparameters.) One function, so both trainers
follow the same numbers: ``rellm.training.checkpointing.WarmupDecayLR`` (stage 4, resumable) multiplies
the peak learning rate in, EPITOME's ``LambdaLR`` takes the factor (``peak`` 1).
"""


def warmup_decay(step, warmup_steps, total_steps, peak=1.0):
    """The learning rate of optimizer step ``step`` (0-based): ``peak * (step + 1) / warmup_steps`` while warming
    up, then ``peak`` times the fraction of the decay steps left, 0 from ``total_steps`` on; a falsy
    ``total_steps`` keeps ``peak`` after the warm-up."""
    if warmup_steps > 0 and step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    if not total_steps:
        return peak
    return peak * (max(total_steps - step, 0) / max(total_steps - warmup_steps, 1))
