"""Stage 6 scoring: EPITOME empathy levels, SER metrics, paired significance tests, RESULTS.md, plots.

It reads the stages' outputs, never the code that made them: nothing here imports ``rellm.features``,
``rellm.models``, ``rellm.training`` or ``rellm.generation`` (test/consistency/test_layers.py).

- ``stage``: stage 6's scoring of one test set as ``rellm.bin.score`` runs it (inputs, fingerprint, lock, outputs)
- ``epitome/``: the bi-encoder empathy classifiers (data, model, training/caching, metrics; ``commands``: the
  ``rellm.bin.epitome`` commands)
- ``significance``: Wilcoxon, paired bootstrap CI, McNemar (the SER metrics, UA / WA / macro-F1 / confusion, are
  ``rellm.data.ser_metrics``: stage 2a's validation UA is the same function)
- ``response_emotion``: does the response follow the heard emotion? A TF-IDF + logistic-regression
  classifier trained on the teacher's expected responses reads the emotion back (our addition, not
  the paper's metric); repeated-response shares; example responses
- ``metric_registry``: the per-utterance metrics stage 6 adds, one record each (``response_words``: does the
  response follow the heard words? The share of the transcript's content words it repeats, against the other test
  sentences' words; our addition)
- ``system_scores``: one test set's per-system figures (and why a figure is n/a), the teacher's reference row,
  RE-LLM-vs-baseline comparisons
- ``training_data``: what the imported checkpoints were trained on; which scored systems overlap the test set
- ``summary``: every scored run of a recipe, mean ± sd over them, significance on the pooled pairs
- ``paper_figures``: the paper's published figures (system labels and letters: ``rellm.systems``)
- ``plots``, ``results_table``: figures and the recipe's RESULTS.md (``rellm.recipes.results`` writes it)
- ``prosody_baseline``: a logistic regression on prosody statistics, the emotion reference
"""
