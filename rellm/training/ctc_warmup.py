"""Optional warm-up of a fresh speech adapter before step 1: CTC against the frozen LLM's own token embeddings.

Not in BLSP-Emo or RE-LLM (``step1_ctc_epochs: 0`` in the paper recipes). Why the mini recipe has it: BLSP-Emo's
step 1 aligns a fresh adapter by the continuation KL over a large ASR corpus, thousands of optimizer steps. On
2 CPU cores the mini recipe affords about a hundred; measured after them, the LLM continued held-out sentences
as if it had not heard their words (all alike), and the trained speech-LLMs gave one reply to many utterances
of an emotion. This warm-up needs no LLM forward pass: the adapter's output vectors ``E [N, H]`` are scored
against the LLM's input-embedding matrix ``W [V, H]`` (logits ``E W^T``, plus one learned blank vector), and a
CTC loss against the transcript's LLM tokens teaches the adapter to point, word by word, at the embeddings of
the words it hears; step 1 then starts from an adapter that carries them. Cost: the product with ``W`` (49152
tokens for SmolLM2), about 40 s an epoch over 720 utterances (the mini recipe's 400-sentence trial step-1 set)
on 2 CPU threads.

Resumable like the steps: the warmed-up adapter is saved in ``save/step0_ctc`` with a done marker of its
options; a rerun loads it, and once step 1 has a checkpoint the warm-up is not looked at again.
"""
import logging
import math
from collections import Counter

import torch
from torch import nn

from rellm.training.losses import ctc_alignment_loss
from rellm.utils.safe_state import load_state, save_state
from rellm.utils.stage import DoneMarker
from rellm.utils.train_loop import optimizer_step, shuffled_batches

logger = logging.getLogger(__name__)

STEP_DIR = "step0_ctc"


def ctc_log_probs(speech, token_embeddings, blank):
    """``log_softmax`` over the LLM vocabulary plus a blank (the last class): ``[B, N, H] -> [B, N, V + 1]``.

    ``blank`` is ``[H + 1]``: a direction and a bias. Computed in fp32 whatever the model dtype.
    """
    speech = speech.float()
    logits = torch.cat([speech @ token_embeddings.float().T,
                        (speech @ blank[:-1].float() + blank[-1].float())[..., None]], dim=-1)
    return logits.log_softmax(dim=-1)


def ctc_items(manifest, cache, tokenizer, output_lengths):
    """``(items, skipped)``: per usable utterance ``(utt_id, LLM token ids of its transcript)``.

    Utterances without features or transcript, or with more tokens than adapter frames (CTC cannot align
    them), are skipped and counted by reason. Features stay in the (memory-mapped) cache until a batch needs them.
    """
    items, skipped = [], Counter()
    for utt_id in sorted(manifest):
        text = (manifest[utt_id].get("transcript") or "").strip()
        if utt_id not in cache:
            skipped["no_features"] += 1
            continue
        if not text:
            skipped["no_transcript"] += 1
            continue
        ids = tokenizer(" " + text, add_special_tokens=False)["input_ids"]
        frames = cache.record(utt_id)["frames"]  # the index's count: no feature read
        if int(output_lengths(torch.tensor([frames]))[0]) < len(ids):
            skipped["more_tokens_than_frames"] += 1
            continue
        items.append((utt_id, ids))
    return items, dict(skipped)


def _batch(items, cache, emotion, device):
    states = [cache.whisper(utt_id) for utt_id, _ in items]
    lengths = torch.tensor([x.shape[0] for x in states])
    padded = torch.zeros(len(items), int(lengths.max()), states[0].shape[1])
    for k, x in enumerate(states):
        padded[k, : x.shape[0]] = x.float()
    targets = torch.tensor([t for _, ids in items for t in ids])
    target_lengths = torch.tensor([len(ids) for _, ids in items])
    embedding = torch.stack([cache.emotion_embedding(utt_id) for utt_id, _ in items]).to(device) if emotion else None
    return padded.to(device), lengths.to(device), embedding, targets, target_lengths


def train_ctc_warmup(model, items, cache, epochs, lr, batch_size, seed, on_epoch=None):
    """Train ``model.adapter`` with CTC on ``items`` (``ctc_items``) whose features ``cache`` holds; returns
    ``(mean loss of each epoch, the learned blank [H + 1])``.

    The LLM is untouched (its input embeddings are read, never trained); stage 4 discards the blank.
    """
    device = model.adapter.fc1.weight.device
    embeddings = model.base_llm.get_input_embeddings().weight.detach().float()  # cast once, not every batch
    blank = nn.Parameter(torch.zeros(embeddings.shape[1] + 1, device=device))
    params = [p for p in model.adapter.parameters()] + [blank]
    was_trainable = [p.requires_grad for p in model.adapter.parameters()]
    model.adapter.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    per_epoch = math.ceil(len(items) / batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=max(epochs * per_epoch, 1),
                                                   pct_start=0.1)
    generator = torch.Generator().manual_seed(seed)
    blank_id = embeddings.shape[0]
    history = []
    model.adapter.train()
    try:
        for epoch in range(1, epochs + 1):
            total = 0.0
            for indices in shuffled_batches(len(items), batch_size, generator):
                batch = [items[i] for i in indices]
                states, lengths, emotion, targets, target_lengths = _batch(batch, cache, model.emotion_dim > 0,
                                                                            device)
                speech, mask = model.encode_speech(states, lengths, emotion)
                log_probs = ctc_log_probs(speech, embeddings, blank).transpose(0, 1)  # [N, B, C] for ctc_loss
                loss = ctc_alignment_loss(log_probs, targets, mask.sum(1).cpu(), target_lengths, blank_id)
                optimizer_step(loss, optimizer, params, 1.0, schedule)
                total += float(loss.detach()) * len(batch)
            history.append(total / len(items))
            if on_epoch is not None:
                on_epoch(epoch, history[-1])
    finally:
        model.adapter.eval()
        for p, flag in zip(model.adapter.parameters(), was_trainable):
            p.requires_grad_(flag)
    return history, blank.detach()


@torch.no_grad()
def greedy_ctc_tokens(model, states, blank, emotion=None):
    """Best-path CTC decoding of one utterance ``[T, D]`` through the adapter: the LLM token ids it points at."""
    device = model.adapter.fc1.weight.device
    speech, mask = model.encode_speech(states[None].to(device), torch.tensor([states.shape[0]], device=device),
                                       None if emotion is None else emotion[None].to(device))
    best = ctc_log_probs(speech, model.base_llm.get_input_embeddings().weight, blank)[0, mask[0]].argmax(-1)
    blank_id = model.base_llm.get_input_embeddings().weight.shape[0]
    tokens, previous = [], None
    for token in best.tolist():
        if token != previous and token != blank_id:
            tokens.append(token)
        previous = token
    return tokens


def run_ctc_warmup(model, hp, exp, manifest, cache, train_logger=None, write=True):
    """The warm-up as stage 4 runs it: skipped when step 1 already has a checkpoint, loaded when done before
    with the same options, else trained and saved (``write``: by the main process only; every DDP rank trains
    the same warm-up from the same seed). Returns the epoch losses (empty when skipped)."""
    step1_dir = exp.checkpoints("step1_semantic")
    if any(step1_dir.glob("CKPT+*")):
        logger.info("step 0 (CTC warm-up): step 1 has a checkpoint; the adapter comes from there")
        return []
    save_dir = exp.checkpoints(STEP_DIR)
    options = {"epochs": int(hp["step1_ctc_epochs"]), "lr": float(hp["step1_ctc_lr"]),
               "batch_size": int(hp["step1_ctc_batch_size"]), "seed": int(hp["seed"]), "utterances": len(manifest)}
    marker = DoneMarker(save_dir, "ctc_warmup", command_file=False)
    adapter_file = save_dir / "adapter.safetensors"
    if marker.is_done(options, overwrite=True) and adapter_file.is_file():
        model.adapter.load_state_dict(load_state(adapter_file))
        logger.info("step 0 (CTC warm-up): done before with these options; adapter loaded from %s", adapter_file)
        return []
    items, skipped = ctc_items(manifest, cache, model.tokenizer, model.adapter.output_lengths)
    if not items:
        raise ValueError(f"step1_ctc_epochs={options['epochs']}: no usable utterance in the step-1 train set "
                         f"(skipped: {skipped})")
    logger.info("step 0 (CTC warm-up of the adapter, not in the paper): %d utterances (skipped %s), %d epochs",
                len(items), skipped or "none", options["epochs"])

    def on_epoch(epoch, loss):
        logger.info("step 0 (CTC warm-up): epoch %d/%d, CTC loss %.3f", epoch, options["epochs"], loss)
        if train_logger is not None and write:
            train_logger.log_stats(stats_meta={"step": STEP_DIR, "epoch": epoch}, train_stats={"ctc": loss})

    history, _ = train_ctc_warmup(model, items, cache, options["epochs"], options["lr"], options["batch_size"],
                               options["seed"], on_epoch)
    if write:
        save_dir.mkdir(parents=True, exist_ok=True)
        save_state({k: v.detach().cpu().contiguous() for k, v in model.adapter.state_dict().items()}, adapter_file)
        marker.mark_done(options, losses=history, skipped=skipped)
    return history
