"""Every training loss of the toolkit (docs/method.md#losses, #response-loss-cross-entropy-or-kl).

Stage 4 (``rellm.training.brain``): the response loss (token CE or BLSP-Emo's temperature KL), the emotion-class
CE and the dimensional A/V/D loss of the heads on the pooled adapter output. The CTC warm-up of a fresh adapter
(``rellm.training.ctc_warmup``) and stage 2a's emotion encoder (``rellm.training.emotion_encoder_training``) have
theirs here too. The EPITOME classifiers' loss stays with them (``rellm.scoring.epitome.model.epitome_loss``):
stage 6 does not build on the pipeline's code.
"""
import torch
import torch.nn.functional as F

IGNORE = -100  # the label of an utterance without an emotion class


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


def emotion_ce(logits, labels):
    """The emotion-class cross-entropy (``input_er``) over the utterances with a class (label ``IGNORE``: none)."""
    return F.cross_entropy(logits.float(), labels, ignore_index=IGNORE)


def ccc(pred, target, eps=1e-8):
    """Lin's concordance correlation coefficient per column of ``[B, K]`` (or of ``[B]``) -> ``[K]`` (or a scalar).

    The toolkit's one CCC: torch tensors (the ``ccc`` dimensional loss, differentiable) or numpy arrays (the stage-2a
    emotion encoder's validation metric, with ``eps=0``). Variances are population variances (divided by B).
    """
    pm, tm = pred.mean(0), target.mean(0)
    pd, td = pred - pm, target - tm
    cov = (pd * td).mean(0)
    return 2 * cov / ((pd * pd).mean(0) + (td * td).mean(0) + (pm - tm) ** 2 + eps)


def avd_loss(pred, target, kind="mse"):
    """Dimensional loss: plain MSE over batch and the 3 dims (the released code), or ``1 - mean CCC``."""
    pred, target = pred.float(), target.float()
    if kind == "mse":
        return F.mse_loss(pred, target)
    if kind == "ccc":
        return 1.0 - ccc(pred, target).mean()
    raise ValueError(f"unknown dimensional loss {kind!r}; use 'mse' or 'ccc'")


def ctc_alignment_loss(log_probs, targets, input_lengths, target_lengths, blank):
    """CTC of the adapter's outputs against the transcript's LLM tokens (the warm-up; ``log_probs`` ``[N, B, C]``);
    an utterance CTC cannot align (more tokens than frames) adds 0 instead of inf."""
    return F.ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=blank, zero_infinity=True)


def emotion_encoder_loss(out, avd, emotion, category_weight):
    """Stage 2a: MSE on the annotated A/V/D dimensions (a NaN target is not annotated) plus ``category_weight``
    times the class CE when any utterance has a class; returns ``(loss, {"mse", "ce"})`` (floats)."""
    known = ~torch.isnan(avd)
    mse = ((out["avd"] - torch.nan_to_num(avd)) ** 2 * known).sum() / known.sum().clamp(min=1)
    total, parts = mse, {"mse": mse.item()}
    if "category_logits" in out and bool((emotion >= 0).any()):
        ce = F.cross_entropy(out["category_logits"], emotion, ignore_index=IGNORE)
        total = total + category_weight * ce
        parts["ce"] = ce.item()
    return total, parts
