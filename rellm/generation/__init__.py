"""Text generation for stages 3 and 5 and the interactive responder.

- ``prompts``: the paper's exact prompt strings and template rendering;
- ``teacher``: stage 3, the frozen text LLM writing expected responses and continuations;
- ``cleaning``: the paper's rules for dropping unusable teacher outputs, counted by reason;
- ``inference``: stage 5, responses and SER answers of the text-only, BLSP-Emo and RE-LLM systems;
- ``ser_parser``: free-text SER answer -> one of the five labels or "unknown";
- ``decoding``: greedy decoding with a static KV cache (CUDA graphs on GPU), LoRA in the prefill only;
- ``runtime``: device / dtype / model set-up shared by the stages.
"""
