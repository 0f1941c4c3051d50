"""Stage 2: frozen-encoder features, cached once per utterance.

- ``audio``: mono 16 kHz loading with reasons for unusable files.
- ``whisper_states``: the frozen Whisper encoder on 30 s padded input, trimmed to the real length.
- ``emotion``: the frozen dimensional emotion encoder (pooled embedding + A/V/D), and where it comes from.
- ``extraction``: one shard through both encoders, and the merge (report, done markers).
- ``cache``: the on-disk format, ``FeatureCache`` and the SpeechBrain dynamic item.
- ``emotion_encoder_training``: stage 2a, a small emotion encoder for recipes without a pretrained one.
"""
