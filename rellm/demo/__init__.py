"""A web demo of a trained model: spoken turns in, the recognised emotion and the replies out, with chat history.

    rellm-demo exp/rellm/official/seed1 [--compare blsp_emo,text_only] [--port N] [--host H]
    python -m rellm.demo ...                                              (the same)

Gradio is an optional extra (``pip install 'rellm[demo]'``). ``rellm.demo.conversation`` holds the conversation
logic, ``rellm.demo.page`` the page, ``rellm.demo.systems`` the ``--compare`` baselines; docs/demo.md is the
user guide.
"""
