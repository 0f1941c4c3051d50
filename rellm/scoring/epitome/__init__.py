"""EPITOME empathy classifiers (Sharma et al. 2020): ER, IP, EX levels 0/1/2 for (seeker post, response).

``data`` (CSVs, split, rationale labels), ``model`` (bi-encoder with rationale head), ``metrics``
(accuracy, macro-F1, IOU-F1), ``training`` (train into the cache: ``train_all``; its pieces ``options``,
``encoders``, ``batching``, ``training_loop``, ``group_training``, ``process_pool``), ``model_cache``
(where the trained classifiers live, ``load_metrics``), ``scorer`` (``EpitomeScorer``).
Command line: ``python -m rellm.bin.epitome {train,metrics,score,fetch}``.
"""
