"""The learning-rate shape of stage 4 and of the EPITOME classifiers: warm-up, then linear decay to 0.

(DeepSpeed's WarmupDecayLR shape; docs/method.md#hyperparameters.) One function, so both trainers follow the
same numbers: ``rellm.training.checkpointing.WarmupDecayLR`` (stage 4, resumable) multiplies the peak learning
rate in, EPITOME's ``LambdaLR`` takes the factor (``peak`` 1). The warm-up is linear, or (``warmup_type: log``)
DeepSpeed's default logarithmic curve, which the released training used (docs/released_code.md#training).
"""
import math

WARMUP_TYPES = ("linear", "log")


def warmup_decay(step, warmup_steps, total_steps, peak=1.0, warmup_type="linear"):
    """The learning rate of optimizer step ``step`` (0-based): while warming up ``peak * (step + 1) / warmup_steps``
    (linear) or ``peak * log(step + 1) / log(warmup_steps)`` (log: 0 at the first step, DeepSpeed's
    ``WARMUP_LOG_RATE``), then ``peak`` times the fraction of the decay steps left, 0 from ``total_steps`` on; a
    falsy ``total_steps`` keeps ``peak`` after the warm-up."""
    if warmup_type not in WARMUP_TYPES:
        raise ValueError(f"warmup_type must be one of {', '.join(WARMUP_TYPES)}, got {warmup_type!r}")
    if warmup_type == "log" and warmup_steps > 1 and step < warmup_steps:
        return peak * math.log(step + 1) / math.log(warmup_steps)
    if warmup_steps > 0 and step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    if not total_steps:
        return peak
    return peak * (max(total_steps - step, 0) / max(total_steps - warmup_steps, 1))
