"""Stage 2: frozen-encoder features, cached once per utterance.

- ``extract_stage``: stage 2 as ``rellm.bin.extract`` runs it (options, inputs, shard or merge).
- ``whisper_states``: the frozen Whisper encoder on 30 s padded input, trimmed to the real length.
- ``emotion``: the frozen dimensional emotion encoder (pooled embedding + A/V/D), and where it comes from.
- ``extraction``: one shard through both encoders, and the merge (report, done markers).
- ``cache``: the on-disk format, ``FeatureCache`` and the SpeechBrain dynamic item.

Audio loading is ``rellm.data.audio``; stage 2a's emotion-encoder training is in ``rellm.training``.
"""
