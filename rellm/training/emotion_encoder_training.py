"""Stage 2a: train a small dimensional emotion encoder where no pretrained one is available.

The mini recipe cannot download audeering's model, so it trains a small
:class:`~rellm.models.emotion_encoder.EmotionEncoder` (same code, small config)
from scratch on its own training split: A/V/D regression (MSE on the
annotated dimensions) plus 5-way categories (cross-entropy). The best epoch
by validation score (mean CCC over A/V/D + UA, halved) is frozen and saved in
the audeering checkpoint format, so stage 2 loads it exactly like the real one.

The convolutional feature encoder over raw 16 kHz audio costs most of the model
on CPU. With ``train_feature_encoder`` it trains with the rest (the default of the
mini recipe: from a random initialisation it must learn to hear pitch and pitch
movement, which its random filters barely expose: frozen, the mini encoder
reached valid UA 0.40; trained, above 0.9). Without it the feature encoder is
frozen, as is usual when fine-tuning a *pretrained* wav2vec2: its output is then
computed once per utterance and only the transformer, pooling and heads train
(an epoch takes seconds). Training batches are random (``shuffled_batches``); utterances longer
than ``max_seconds`` are randomly cropped in training (whole in validation). The
intended corpora are small, so audio or features are held in memory.
"""
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch

from rellm.data.audio import AudioError, load_audio
from rellm.data.emotions import AVD, EMOTION_TO_ID, EMOTIONS, NUM_EMOTIONS
from rellm.data.ser_metrics import UNKNOWN, unweighted_accuracy
from rellm.models.emotion_encoder import EmotionEncoder, save_emotion_encoder, small_emotion_config
from rellm.training.losses import ccc, emotion_encoder_loss
from rellm.utils.drop_report import DropReport, ReasonCounts
from rellm.utils.io import atomic_write_json, atomic_write_text
from rellm.utils.train_loop import optimizer_step
from rellm.utils.train_loop import shuffled_batches as random_batches

logger = logging.getLogger(__name__)


def validation_ccc(pred, gold):
    """CCC of two 1-D arrays in float64 (``rellm.training.losses.ccc``); 0 for fewer than 2 values or two equal
    constants (no agreement to measure)."""
    pred, gold = np.asarray(pred, dtype=np.float64), np.asarray(gold, dtype=np.float64)
    if len(pred) < 2:
        return 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        value = float(ccc(pred, gold, eps=0.0))
    return value if math.isfinite(value) else 0.0


def validation_ua(pred_ids, gold_ids):
    """UA (``rellm.data.ser_metrics``) of category ids; a gold id < 0 is unlabelled (left out), a predicted id
    past the five EMOTIONS is a wrong answer; 0 without labelled utterances."""
    labelled = [(int(p), int(g)) for p, g in zip(pred_ids, gold_ids) if g >= 0]
    if not labelled:
        return 0.0
    refs = [EMOTIONS[g] for _, g in labelled]
    preds = [EMOTIONS[p] if p < NUM_EMOTIONS else UNKNOWN for p, _ in labelled]
    return unweighted_accuracy(refs, preds)


def load_split(entries, desc):
    """``(items, report)``: audio + targets of a manifest (``{data_root}`` resolved); unreadable audio is dropped
    and counted by reason, utterances without a category or an A/V/D label are kept and counted in ``notes``."""
    from tqdm import tqdm

    items, report, notes = [], DropReport(), ReasonCounts()
    for utt_id in tqdm(sorted(entries), desc=f"loading {desc}", unit="utt"):
        e = entries[utt_id]
        try:
            audio = load_audio(e["wav"])
        except AudioError as err:
            report.drop(err.reason, utt_id)
            continue
        avd = [e.get(k) for k in AVD]
        emotion = EMOTION_TO_ID.get(e.get("emotion"), -100)
        if emotion < 0:
            notes.add("no_category_label", utt_id)
        if any(v is None for v in avd):
            notes.add("no_avd_label", utt_id)
        items.append({"id": utt_id, "audio": torch.from_numpy(audio),
                      "avd": torch.tensor([float("nan") if v is None else float(v) for v in avd]),
                      "emotion": emotion})
        report.keep()
    summary = {**report.as_dict(), "notes": notes.as_dict()}
    if not items:
        raise ValueError(f"no usable utterance in the {desc} manifest: {summary}")
    report.log(logger, f"emotion encoder {desc} data")
    return items, summary


@torch.inference_mode()
def precompute_conv_features(model, items, batch_size, desc):
    """Run the frozen feature encoder once per utterance; store ``features`` [T, C] and drop the audio."""
    from tqdm import tqdm

    order = sorted(range(len(items)), key=lambda i: len(items[i]["audio"]))
    for start in tqdm(range(0, len(order), batch_size), desc=f"conv features ({desc})", unit="batch"):
        idx = order[start: start + batch_size]
        lengths = torch.tensor([len(items[i]["audio"]) for i in idx])
        wave = torch.zeros(len(idx), int(lengths.max()))
        for row, i in enumerate(idx):
            wave[row, : lengths[row]] = items[i]["audio"]
        feats, frames = model.conv_features(wave, lengths)
        for row, i in enumerate(idx):
            items[i]["features"] = feats[row, : int(frames[row])].clone()
            del items[i]["audio"]


def model_input(item):
    """What the model reads of an item: its cached conv ``features`` [T, C] (frozen feature encoder) or ``audio`` [S]."""
    return item["features"] if "features" in item else item["audio"]


def collate(items, max_len=None, generator=None):
    """Pad the items' inputs (after a random crop to ``max_len`` frames or samples when given) into
    ``(inputs [B, T, C] or [B, S], lengths, avd, emotion)``."""
    clips = []
    for it in items:
        f = model_input(it)
        if max_len and len(f) > max_len:
            start = int(torch.randint(0, len(f) - max_len + 1, (1,), generator=generator))
            f = f[start: start + max_len]
        clips.append(f)
    lengths = torch.tensor([len(c) for c in clips])
    padded = torch.zeros((len(clips), int(lengths.max())) + tuple(clips[0].shape[1:]))
    for i, c in enumerate(clips):
        padded[i, : len(c)] = c
    return (padded, lengths, torch.stack([it["avd"] for it in items]),
            torch.tensor([it["emotion"] for it in items], dtype=torch.long))


def forward_batch(model, inputs, lengths):
    """The model's outputs for a ``collate`` batch, from cached features or from raw audio."""
    if inputs.dim() == 3:
        return model.forward_conv_features(inputs, lengths)
    return model(inputs, lengths)


def shuffled_batches(items, batch_size, generator):
    """Batches of a fresh random order each epoch.

    Not length-bucketed: in emotional speech the duration follows the emotion (sad speech is slow, angry
    fast), so batches of similar length are batches of one emotion, and the encoder then learned far more
    slowly (valid UA 0.20 after 3 epochs on the mini corpus, against 0.49 with random batches). Training
    inputs are cropped to ``max_seconds``, so random batches pad little.
    """
    return random_batches(len(items), batch_size, generator)


@torch.no_grad()
def evaluate(model, items, batch_size):
    """Valid metrics: CCC per dimension (annotated items), UA and loss-free predictions."""
    model.eval()
    preds, golds, cat_pred, cat_gold = [], [], [], []
    order = sorted(range(len(items)), key=lambda i: len(model_input(items[i])))
    for i in range(0, len(order), batch_size):
        batch = [items[j] for j in order[i: i + batch_size]]
        inputs, lengths, avd, emotion = collate(batch)
        out = forward_batch(model, inputs, lengths)
        preds.append(out["avd"]), golds.append(avd)
        if "category_logits" in out:
            cat_pred.append(out["category_logits"].argmax(-1)), cat_gold.append(emotion)
    pred, gold = torch.cat(preds).numpy(), torch.cat(golds).numpy()
    metrics = {}
    for d, name in enumerate(AVD):
        ok = ~np.isnan(gold[:, d])
        metrics[f"ccc_{name}"] = validation_ccc(pred[ok, d], gold[ok, d]) if ok.any() else float("nan")
    cccs = [metrics[f"ccc_{n}"] for n in AVD if not math.isnan(metrics[f"ccc_{n}"])]
    metrics["ccc_mean"] = float(np.mean(cccs)) if cccs else float("nan")
    if cat_pred:
        p, g = torch.cat(cat_pred).numpy(), torch.cat(cat_gold).numpy()
        metrics["ua"] = validation_ua(p, g)
    parts = [v for v in (metrics["ccc_mean"], metrics.get("ua")) if v is not None and not math.isnan(v)]
    metrics["score"] = float(np.mean(parts)) if parts else float("-inf")
    return metrics


def train_emotion_encoder(train_entries, valid_entries, output_folder, *, model_config, epochs=20, batch_size=8,
                          lr=1e-3, weight_decay=1e-2, category_weight=1.0, max_seconds=6.0, seed=1,
                          max_minutes=None, train_feature_encoder=False):
    """Train, keep the best epoch, freeze it and save it to ``output_folder`` (config.json + model.safetensors).

    Returns a summary dict (best epoch and its validation metrics, data counts).
    """
    from tqdm import tqdm

    output_folder = Path(output_folder)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    (train, train_report), (valid, valid_report) = load_split(train_entries, "train"), load_split(valid_entries, "valid")
    data_report = {"train": train_report, "valid": valid_report}
    model = EmotionEncoder(model_config)
    if not train_feature_encoder:
        model.wav2vec2.freeze_feature_encoder()
        model.wav2vec2.feature_extractor.eval()
        precompute_conv_features(model, train, batch_size, "train")
        precompute_conv_features(model, valid, batch_size, "valid")
    n_params = sum(p.numel() for p in model.parameters())
    logger.info("emotion encoder: %.2f M parameters, %d train / %d valid utterances", n_params / 1e6,
                len(train), len(valid))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr,
                                  weight_decay=weight_decay)
    steps = epochs * math.ceil(len(train) / batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.15)
    units_per_second = 16000 / (1.0 if train_feature_encoder else float(np.prod(model_config.conv_stride)))
    max_len = int(max_seconds * units_per_second) if max_seconds else None
    best, best_state, log_lines, started = None, None, [], time.time()
    for epoch in range(1, epochs + 1):
        model.train()
        if not train_feature_encoder:
            model.wav2vec2.feature_extractor.eval()  # frozen (and has no dropout; kept explicit)
        totals, n = {}, 0
        for idx in tqdm(shuffled_batches(train, batch_size, generator), desc=f"epoch {epoch}/{epochs}", unit="batch"):
            inputs, lengths, avd, emotion = collate([train[i] for i in idx], max_len, generator)
            loss, parts = emotion_encoder_loss(forward_batch(model, inputs, lengths), avd, emotion, category_weight)
            optimizer_step(loss, optimizer, model.parameters(), 5.0, scheduler)
            for k, v in parts.items():
                totals[k] = totals.get(k, 0.0) + v * len(idx)
            n += len(idx)
        metrics = evaluate(model, valid, batch_size)
        train_part = ", ".join(f"train_{k}={v / n:.4f}" for k, v in totals.items())
        valid_part = ", ".join(f"valid_{k}={v:.4f}" for k, v in metrics.items())
        line = f"epoch {epoch}: {train_part}, {valid_part}"
        logger.info(line)
        log_lines.append(line)
        if best is None or metrics["score"] > best["metrics"]["score"]:
            best = {"epoch": epoch, "metrics": metrics}
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if max_minutes and (time.time() - started) / 60 > max_minutes and epoch < epochs:
            logger.warning("stopping after epoch %d: the time budget of %s minutes is spent", epoch, max_minutes)
            log_lines.append(f"stopped after epoch {epoch} (max_minutes={max_minutes})")
            break
    model.load_state_dict(best_state)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    save_emotion_encoder(model, output_folder)
    atomic_write_text(output_folder / "train_log.txt", "\n".join(log_lines) + "\n")
    summary = {"best_epoch": best["epoch"], "valid": best["metrics"], "parameters": n_params,
               "train_utterances": len(train), "valid_utterances": len(valid), "data": data_report,
               "minutes": round((time.time() - started) / 60, 2)}
    atomic_write_json(output_folder / "metrics.json", summary)
    logger.info("saved the frozen emotion encoder (epoch %d: valid CCC %.3f, UA %.3f) to %s", best["epoch"],
                best["metrics"]["ccc_mean"], best["metrics"].get("ua", float("nan")), output_folder)
    return summary


def config_from_options(hidden_size, num_layers, num_heads, intermediate_size, conv_dim, num_categories, dropout,
                        normalize_waveform=True):
    return small_emotion_config(hidden_size=hidden_size, num_hidden_layers=num_layers, num_attention_heads=num_heads,
                                intermediate_size=intermediate_size, conv_dim=conv_dim,
                                num_categories=num_categories, final_dropout=dropout, hidden_dropout=dropout,
                                normalize_waveform=bool(normalize_waveform))
