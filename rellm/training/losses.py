"""Alignment losses (docs/method.md#losses, #response-loss-cross-entropy-or-kl)."""
import torch.nn.functional as F


def distillation_kl(student_logits, teacher_logits, temperature=2.0):
    """``KL(teacher || student)`` of the temperature-softened next-token distributions.

    Per-token mean over the ``[num_targets, V]`` rows ("batchmean" on the flattened
    tensor), no ``tau^2`` factor: BLSP-Emo's ``response_kl``.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student logits {tuple(student_logits.shape)} and teacher logits {tuple(teacher_logits.shape)} differ: "
            "the two branches must share the same target tokens"
        )
    log_p_s = F.log_softmax(student_logits.float() / temperature, dim=-1)
    log_p_t = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    return F.kl_div(log_p_s, log_p_t, log_target=True, reduction="sum") / max(student_logits.shape[0], 1)


def response_ce(logits, target_ids):
    """Token cross-entropy averaged over all target tokens of the batch (``response_ce``)."""
    return F.cross_entropy(logits.float(), target_ids)
