"""Stage 4 training: ``AlignBrain`` (speechbrain.Brain), the two-step orchestration and checkpoint helpers.

- ``brain.py``: ``AlignBrain`` (forward, losses, LR schedule, epoch summaries)
- ``align.py``: ``train_two_steps`` (semantic then expected-behaviour alignment, ``final/``)
- ``losses.py``: token CE and the temperature KL of BLSP-Emo
- ``checkpointing.py``: atomic checkpoint folders, trainable-only model state, RNG state, LR schedule
- ``lr_schedule.py``: the warm-up/decay learning-rate shape (shared with the EPITOME classifiers)
- ``experiment_dir.py``: the layout of an experiment folder (``final/``, ``save/``, logs), for every reader and writer
"""
