"""Fine-tuning one EPITOME classifier: the optimisation loop, dev evaluation and model selection."""
import copy
import logging
import math
import time

import numpy as np
import torch
from tqdm import tqdm

from rellm.scoring.epitome.batching import Batch, length_bucketed_batches, predict
from rellm.scoring.epitome.metrics import classifier_metrics
from rellm.scoring.epitome.model import epitome_loss
from rellm.utils.io import atomic_write_text
from rellm.utils.lr_schedule import warmup_decay
from rellm.utils.train_loop import optimizer_step

logger = logging.getLogger(__name__)


def _strip_special(labels_list, data, special_ids):
    """Rationale tags over the content tokens only ([CLS]/[SEP] never belong to a rationale)."""
    out = []
    for labels, ids in zip(labels_list, data.response_ids):
        out.append([lab for lab, tok in zip(labels, ids) if tok not in special_ids])
    return out


def evaluate(model, data, seeker_states, tokenizer, batch_size=64, response_states=None):
    levels, _, rationales = predict(model, data, seeker_states, tokenizer.pad_token_id, batch_size, response_states)
    special = set(tokenizer.all_special_ids)
    return classifier_metrics(
        data.levels, levels,
        _strip_special(rationales, data, special), _strip_special(data.rationale_labels, data, special))


def level_class_weights(levels, scheme):
    """Cross-entropy class weights: ``none``, ``balanced`` (n / (K n_k)) or ``sqrt_balanced`` (its square root)."""
    if scheme in (None, "none"):
        return None
    counts = np.bincount(levels, minlength=3).astype(float)
    if (counts == 0).any():
        raise ValueError(f"a level has no training example (counts {counts.tolist()}); "
                         "use --level_weighting=none")
    weights = counts.sum() / (len(counts) * counts)
    if scheme == "sqrt_balanced":
        weights = np.sqrt(weights)
    elif scheme != "balanced":
        raise ValueError(f"unknown level_weighting {scheme!r}; use none, balanced or sqrt_balanced")
    return torch.tensor(weights / weights.mean(), dtype=torch.float32)


SELECTION_CRITERIA = ("accuracy", "macro_f1", "iou_f1", "accuracy+macro_f1")


def selection_score(metrics, select_on):
    """Dev score that picks the kept model: one metric, or ``accuracy+macro_f1`` (their sum, both count)."""
    if select_on not in SELECTION_CRITERIA:
        raise ValueError(f"unknown select_on {select_on!r}; use one of {', '.join(SELECTION_CRITERIA)}")
    return sum(metrics[m] for m in select_on.split("+"))


def average_states(states):
    """Element-wise mean of state dicts (integer buffers are taken from the first)."""
    return {k: torch.stack([s[k].float() for s in states]).mean(0).to(v.dtype) if v.is_floating_point() else v
            for k, v in states[0].items()}


def train_classifier(model, train, dev, seeker_states, tokenizer, hp, response_states=None, log_file=None,
                     progress=True):
    """Fine-tune ``model`` on ``train``; keep the state with the best dev ``hp['select_on']`` metric.

    ``hp['average_best']`` N > 1 keeps the average of the N best dev evaluations' weights
    instead (ESPnet's checkpoint averaging): one dev split of ~150 pairs picks a single
    evaluation by luck more than merit, and the average of a few good ones varies less.

    ``response_states`` holds the frozen responder bottom's output (layer
    ``model.responder_start_layer``) per response text, or None to run the whole responder.
    Returns ``(history, best_dev_metrics)``; ``model`` holds the selected weights afterwards.
    """
    torch.manual_seed(hp["seed"])
    rng = np.random.default_rng(hp["seed"])
    pad_id = tokenizer.pad_token_id
    lengths = [len(x) for x in train.response_ids]
    steps_per_epoch = math.ceil(len(train) / hp["batch_size"])
    total_steps = steps_per_epoch * hp["epochs"]
    warmup = int(hp["warmup_ratio"] * total_steps)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [{"params": [p for p in params if p.ndim >= 2], "weight_decay": hp["weight_decay"]},
         {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}],
        lr=hp["lr"], eps=1e-8)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_decay(step, warmup, total_steps))
    weight = level_class_weights(train.levels, hp["level_weighting"])
    if weight is not None:
        weight = weight.to(model.device)
    n_evals = max(1, min(hp["evals_per_epoch"], steps_per_epoch))
    eval_steps = {round(steps_per_epoch * j / n_evals) for j in range(1, n_evals + 1)}
    cpu0 = time.process_time()
    select_on = hp["select_on"]
    selection_score({"accuracy": 0.0, "macro_f1": 0.0, "iou_f1": 0.0}, select_on)  # fail before training
    keep = int(hp.get("average_best") or 1)
    kept = []  # (dev score, evaluation number, weights) of the `keep` best evaluations, best first
    best, history, lines, step = None, [], [], 0
    for epoch in range(1, hp["epochs"] + 1):
        batches = length_bucketed_batches(lengths, hp["batch_size"], rng)
        bar = tqdm(batches, desc=f"epoch {epoch}/{hp['epochs']}", disable=not progress, leave=False)
        running = []
        for k, indices in enumerate(bar, 1):
            model.train()
            batch = Batch(indices, train, seeker_states, pad_id, response_states, model.device)
            level_logits, rationale_logits = batch.run(model)
            loss, _, _ = epitome_loss(level_logits, rationale_logits, batch.levels, batch.rationale,
                                      batch.response_mask, hp["lambda_level"], hp["lambda_rationale"], weight)
            optimizer_step(loss, optimizer, params, hp["grad_clip"], scheduler)
            step += 1
            running.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(running[-20:]):.3f}")
            if k in eval_steps:
                dev_metrics = evaluate(model, dev, seeker_states, tokenizer, hp["eval_batch_size"], response_states)
                record = {"epoch": epoch, "step": step, "train_loss": float(np.mean(running)),
                          "cpu_seconds": round(time.process_time() - cpu0, 1),
                          "dev": {m: dev_metrics[m] for m in ("accuracy", "macro_f1", "iou_f1")}}
                history.append(record)
                running = []
                score = selection_score(dev_metrics, select_on)
                improved = best is None or score > selection_score(best, select_on)
                if improved:
                    best = dev_metrics
                if len(kept) < keep or score > kept[-1][0]:
                    kept.append((score, len(history) - 1, copy.deepcopy(model.trainable_state_dict())))
                    kept.sort(key=lambda item: (-item[0], item[1]))  # ties: the earlier evaluation first
                    del kept[keep:]
                line = (f"epoch {epoch} step {step}/{total_steps} train_loss {record['train_loss']:.4f} "
                        f"dev acc {dev_metrics['accuracy']:.4f} macro_f1 {dev_metrics['macro_f1']:.4f} "
                        f"iou_f1 {dev_metrics['iou_f1']:.4f} cpu {record['cpu_seconds']:.0f}s{' *' if improved else ''}")
                logger.info(line)
                lines.append(line)
                if log_file:
                    atomic_write_text(log_file, "\n".join(lines) + "\n")
    if keep == 1:
        model.load_state_dict(kept[0][2], strict=False)
        return history, best
    model.load_state_dict(average_states([state for _, _, state in kept]), strict=False)
    averaged = evaluate(model, dev, seeker_states, tokenizer, hp["eval_batch_size"], response_states)
    averaged["averaged_evaluations"] = sorted(history[i]["step"] for _, i, _ in kept)
    line = (f"kept the average of the {len(kept)} best evaluations (steps {averaged['averaged_evaluations']}): "
            f"dev acc {averaged['accuracy']:.4f} macro_f1 {averaged['macro_f1']:.4f} iou_f1 {averaged['iou_f1']:.4f}")
    logger.info(line)
    if log_file:
        atomic_write_text(log_file, "\n".join(lines + [line]) + "\n")
    return history, averaged
