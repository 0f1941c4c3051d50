"""Test scaffolding, kept out of the production modules (tests, smoke runs and bench/ scripts use it).

- ``toy_models``: tiny random-weight tokenizer, LLM and SpeechLLM (nothing downloaded)
- ``toy_recipe``: stage 1-3 outputs with random features, written as a real stage 2 feature cache
- ``reference_decoding``: HF ``generate`` over a SpeechLLM's inputs, the reference the real decoder is checked against
- ``pretrained_models``: the registry models as session-scoped pytest fixtures, and tiny random models with
  their real tokenizers (imports pytest: only conftest files and tests import it)

Importing this package or the toy modules needs no pytest.
"""
