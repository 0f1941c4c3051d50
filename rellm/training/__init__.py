"""Stage 4 training (and stage 2a's emotion encoder): ``AlignBrain`` (speechbrain.Brain), the two-step orchestration,
losses and checkpoint helpers.

- ``stage.py``: stage 4 as ``rellm.bin.train`` runs it (start-up checks, precision, lock, done marker, resume)
- ``brain.py``: ``AlignBrain`` (forward, losses, LR schedule, epoch summaries)
- ``align.py``: ``train_two_steps`` (semantic then expected-behaviour alignment, ``final/``)
- ``losses.py``: every training loss (token CE, the temperature KL of BLSP-Emo, emotion CE, A/V/D, CTC, stage 2a's)
- ``checkpointing.py``: atomic checkpoint folders, trainable-only model state, RNG state, LR schedule
- ``curves.py``: the training curves (TensorBoard, training_curves.png)
- ``inputs.py``: what a stage-4 run reads (its lineage inputs)
- ``ctc_warmup.py``: the optional CTC warm-up of a fresh adapter
- ``blsp_emo_import.py``: the released BLSP-Emo written as an experiment (``rellm.bin.import_blsp_emo``)
- ``emotion_encoder_stage.py``, ``emotion_encoder_training.py``: stage 2a, a small emotion encoder for recipes
  without a pretrained one

The experiment folder's layout is ``rellm.utils.experiment_dir``; the learning-rate shape ``rellm.utils.lr_schedule``.
"""
