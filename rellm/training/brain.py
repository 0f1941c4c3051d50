"""``AlignBrain``: one alignment step (semantic or expected-behaviour) as a ``speechbrain.Brain``.

- semantic (BLSP stage 1): loss = KL(text LLM || speech LLM) at tau on the continuation
  tokens; only the adapter trains.
- behaviour (RE-LLM / BLSP-Emo stage 2): loss = response loss (token CE, or KL to the text
  LLM given the emotion-labelled prompt) + lambda_cat * CE(emotion) + lambda_dim * MSE(A/V/D).

``Brain.fit`` owns epochs, autocast (``--precision``), gradient accumulation and clipping,
DDP and intra-epoch checkpoints; this class adds the forward, the losses, the LR schedule
and the epoch summary.
"""
import logging
import time

import speechbrain as sb
import torch
from torch.nn.parallel import DistributedDataParallel

from rellm.training.losses import avd_loss, distillation_kl, emotion_ce, response_ce
from rellm.utils.stage import UserError

logger = logging.getLogger(__name__)


def _abs_lengths(values, device):
    return torch.as_tensor(values, dtype=torch.long, device=device)


class NonFiniteLossError(UserError):
    """The training loss became NaN or infinite."""


class AlignBrain(sb.Brain):
    """Hparams used: ``step`` (semantic|behaviour), ``response_loss`` (ce|kl), ``kd_temperature``,
    ``lambda_cat``, ``lambda_dim``, ``dim_loss``, ``use_emotion``, ``lr_schedule``, ``train_logger``,
    ``opt_class``-style ``optimizer`` (a callable taking the trainable parameters)."""

    # -------------------------------------------------------------- forward / loss
    def compute_forward(self, batch, stage):
        batch = batch.to(self.device)
        hp = self.hparams
        emotion_embedding = batch.emotion_embedding.data if hp.use_emotion else None
        out = self.modules.model(
            batch.whisper.data, _abs_lengths(batch.whisper_len, self.device), emotion_embedding,
            batch.prompt_ids.data, _abs_lengths(batch.prompt_len, self.device),
            batch.tail_ids.data, _abs_lengths(batch.tail_len, self.device),
            _abs_lengths(batch.label_start, self.device),
        )
        if self._needs_teacher:
            out["teacher_logits"] = self.unwrapped_model.teacher_logits(
                batch.teacher_prompt_ids.data, _abs_lengths(batch.teacher_prompt_len, self.device),
                batch.tail_ids.data, _abs_lengths(batch.tail_len, self.device),
                _abs_lengths(batch.label_start, self.device),
            )
        return out

    @property
    def unwrapped_model(self):
        """The ``SpeechLLM`` itself (inside DDP when distributed)."""
        model = self.modules["model"]
        return model.module if isinstance(model, DistributedDataParallel) else model

    @property
    def _needs_teacher(self):
        return self.hparams.step == "semantic" or self.hparams.response_loss == "kl"

    def compute_objectives(self, out, batch, stage):
        hp = self.hparams
        parts = {}
        if self._needs_teacher:
            parts["response"] = distillation_kl(out["logits"], out["teacher_logits"], hp.kd_temperature)
        else:
            parts["response"] = response_ce(out["logits"], out["target_ids"])
        loss = parts["response"]
        labels = _abs_lengths(batch.emotion_id, self.device)
        if hp.step == "behaviour" and hp.lambda_cat > 0:
            parts["emotion_ce"] = emotion_ce(out["emotion_logits"], labels)
            loss = loss + hp.lambda_cat * parts["emotion_ce"]
        if hp.step == "behaviour" and hp.lambda_dim > 0:
            parts["avd"] = avd_loss(out["avd"], batch.avd_target.data, hp.dim_loss)
            loss = loss + hp.lambda_dim * parts["avd"]
        n = len(batch.id)
        stats = self._stats
        stats["utts"] += n
        stats["targets"] += int(out["target_ids"].numel())
        for k, v in parts.items():
            stats[k] += float(v.detach()) * n
        keep = labels != -100
        stats["ser_correct"] += int((out["emotion_logits"].argmax(-1)[keep] == labels[keep]).sum())
        stats["ser_total"] += int(keep.sum())
        return loss

    # -------------------------------------------------------------- optimisation
    def init_optimizers(self):
        """One AdamW over the trainable parameters only (the frozen LLM is never handed to the optimizer)."""
        params = [p for p in self.modules.parameters() if p.requires_grad]
        if not params:
            raise ValueError("nothing to train in this step: every parameter is frozen")
        self.optimizer = self.hparams.optimizer(params)
        self.optimizers_dict = {"optimizer": self.optimizer}
        if self.checkpointer is not None:
            self.checkpointer.add_recoverable("optimizer", self.optimizer)

    def on_fit_start(self):
        # DDP must not broadcast or bucket the frozen LLM (7B of weights that every rank already has).
        model = self.modules["model"]
        frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
        frozen += [n for n, _ in model.named_buffers()]
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, frozen)
        super().on_fit_start()  # recovers the newest complete checkpoint, if any
        self._t0 = time.time()
        self.steps_at_start = self.optimizer_step  # what a resume restored (the run's own steps are the rest)
        ckpt = self.checkpointer.find_checkpoint() if self.checkpointer is not None else None
        if ckpt is not None:
            logger.info("%s: resumed from %s at optimizer step %d (batch %d of epoch %s)", self.hparams.step_name,
                        ckpt.path, self.optimizer_step, self.step, ckpt.meta.get("epoch", "?"))
        else:
            logger.info("%s: no checkpoint, starting at optimizer step 0", self.hparams.step_name)

    def check_loss_isfinite(self, loss):
        """A NaN/inf loss stops the run before the backward pass and the optimizer step, so the weights and
        the newest checkpoint stay good; the error names the batch (SpeechBrain's default would step on it)."""
        if torch.isfinite(loss):
            return
        ckpt = self.checkpointer.find_checkpoint() if self.checkpointer is not None else None
        where = f"the last good checkpoint is {ckpt.path}" if ckpt is not None else "no checkpoint was written yet"
        raise NonFiniteLossError(
            f"{self.hparams.step_name}: the loss is {float(loss)} at batch {self.step} (optimizer step "
            f"{self.optimizer_step}; utterances {', '.join(self._batch_ids[:8])}); training stopped and {where}. "
            "Check these utterances' features and targets, or lower the learning rate, then re-run to resume")

    def on_fit_batch_start(self, batch, should_step):
        self._batch_ids = [str(i) for i in batch.id]
        if should_step:
            self.hparams.lr_schedule.apply(self.optimizer)

    def on_fit_batch_end(self, batch, outputs, loss, should_step):
        if should_step:
            self.hparams.lr_schedule.step()

    def _should_save_intra_epoch_ckpt(self, last_ckpt_time, steps_since_ckpt):
        # Only at an optimizer-step boundary: accumulated gradients are not part of a checkpoint.
        if self.step % self.grad_accumulation_factor != 0:
            return False
        return super()._should_save_intra_epoch_ckpt(last_ckpt_time, steps_since_ckpt)

    # -------------------------------------------------------------- stages
    def on_stage_start(self, stage, epoch=None):
        self._stats = {"utts": 0, "targets": 0, "ser_correct": 0, "ser_total": 0, "response": 0.0,
                       "emotion_ce": 0.0, "avd": 0.0}
        self._stage_t0 = time.time()
        position = getattr(self.hparams, "progress_position", None)
        if position and epoch is not None:  # read by the job runner's progress line (rellm.jobs.progress)
            logger.info("progress: %s, epoch %d/%d, %s", position, epoch, self.hparams.epochs,
                        "training" if stage == sb.Stage.TRAIN else "validation")

    def _summary(self, stage_loss):
        s = self._stats
        n = max(s["utts"], 1)
        out = {"loss": round(float(stage_loss), 5), "response": round(s["response"] / n, 5)}
        if self.hparams.step == "behaviour":
            if self.hparams.lambda_cat > 0:
                out["emotion_ce"] = round(s["emotion_ce"] / n, 5)
            if self.hparams.lambda_dim > 0:
                out[f"avd_{self.hparams.dim_loss}"] = round(s["avd"] / n, 5)
            if s["ser_total"]:
                out["ser_acc"] = round(s["ser_correct"] / s["ser_total"], 4)
        out["utt_per_s"] = round(s["utts"] / max(time.time() - self._stage_t0, 1e-6), 2)
        return out

    def on_stage_end(self, stage, stage_loss, epoch=None):
        summary = self._summary(stage_loss)
        if stage == sb.Stage.TRAIN:
            self._train_summary = summary
            if self.hparams.valid_set_size == 0:
                self._end_of_epoch(epoch, summary, None)
        elif stage == sb.Stage.VALID:
            self._end_of_epoch(epoch, self._train_summary, summary)

    def _end_of_epoch(self, epoch, train_stats, valid_stats):
        lr = self.optimizer.param_groups[0]["lr"]
        self.hparams.train_logger.log_stats(
            stats_meta={"step": self.hparams.step_name, "epoch": epoch, "lr": lr,
                        "optimizer_steps": self.optimizer_step},
            train_stats=train_stats, valid_stats=valid_stats,
        )
        curves = getattr(self.hparams, "curves", None)
        if curves is not None and sb.utils.distributed.if_main_process():  # TensorBoard events + PNG per epoch
            curves.log_epoch(self.hparams.step_name, epoch, train_stats, valid_stats)
        meta = {"epoch": epoch, "train_loss": train_stats["loss"]}
        if valid_stats:
            meta["valid_loss"] = valid_stats["loss"]
        self.checkpointer.save_and_keep_only(meta=meta, num_to_keep=1)
