"""Stage 6 scoring: EPITOME empathy levels, SER metrics, paired significance tests, RESULTS.md, plots.

- ``epitome/``: the bi-encoder empathy classifiers (data, model, training/caching, metrics)
- ``ser_metrics``: UA / WA / macro-F1 / confusion of the parsed SER answers
- ``significance``: Wilcoxon, paired bootstrap CI, McNemar
- ``response_emotion``: does the response follow the heard emotion? A TF-IDF + logistic-regression
  classifier trained on the teacher's expected responses reads the emotion back (our addition, not
  the paper's metric); repeated-response shares; example responses
- ``response_words``: does the response follow the heard words? The share of the transcript's content
  words it repeats, against the other test sentences' words (our addition)
- ``system_scores``: one test set's per-system figures (and why a figure is n/a), the teacher's reference row,
  RE-LLM-vs-baseline comparisons
- ``training_data``: what the imported checkpoints were trained on; which scored systems overlap the test set
- ``summary``: every scored run of a recipe, mean ± sd over them, significance on the pooled pairs
- ``systems``: the one table of system labels; ``paper_figures``: the paper's published figures
- ``plots``, ``results_table``: figures and the recipe's RESULTS.md
"""
