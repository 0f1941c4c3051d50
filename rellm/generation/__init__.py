"""Text generation for stages 3 and 5 and the interactive responder.

- ``prompts``: the paper's exact prompt strings and template rendering;
- ``teacher``: stage 3, the frozen text LLM writing expected responses and continuations;
- ``cleaning``: the paper's rules for dropping unusable teacher outputs, counted by reason;
- ``inference``: stage 5, responses and SER answers of the systems (text-only, BLSP-Emo, RE-LLM, ...);
- ``ser_parser``: free-text SER answer -> one of the five labels or "unknown";
- ``decoding``: greedy decoding with a static KV cache (CUDA graphs on GPU), LoRA in the prefill only;
- ``runtime``: device / dtype / model set-up shared by the stages;
- ``respond_stage``, ``infer_stage``: stages 3 and 5 as ``rellm.bin.respond`` and ``rellm.bin.infer`` run them.

Stage 5 answers with any system of ``rellm.systems`` (a ``text`` system as the text-only LLM, a ``speech`` system as
a trained speech-LLM).
"""
