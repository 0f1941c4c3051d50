"""EPITOME empathy classifiers (Sharma et al. 2020): ER, IP, EX levels 0/1/2 for (seeker post, response).

``data`` (CSVs, split, rationale labels), ``model`` (bi-encoder with rationale head), ``metrics``
(accuracy, macro-F1, IOU-F1), ``training`` (train/cache/load, ``EpitomeScorer``).
Command line: ``python -m rellm.bin.epitome {train,metrics,score,fetch}``.
"""
