"""Model set-up shared by stage 3, stage 5 and the responder (device and dtype: ``rellm.utils.torch_device``)."""
import logging

from rellm.generation.prompts import CHATML_START
from rellm.utils.torch_device import pick_device, pick_dtype

logger = logging.getLogger(__name__)


def set_threads(num_threads):
    """Cap intra-op threads (shared CPU machines; DEVELOPING.md says at most 2 here). 0 keeps torch's default."""
    if num_threads and int(num_threads) > 0:
        import torch

        torch.set_num_threads(int(num_threads))


def load_llm(name_or_path, dtype="auto", device=None, num_threads=0):
    """``(llm, tokenizer, ChatLayout)`` of a frozen chat LLM (registry name, local folder or hub name)."""
    from rellm.models.chat_layout import ChatLayout
    from rellm.pretrained import load_causal_lm

    device = device or pick_device("auto")
    set_threads(num_threads)
    resolved = pick_dtype(dtype, device)
    logger.info("LLM %s on %s in %s (dtype option %s)", name_or_path, device, str(resolved).replace("torch.", ""),
                dtype)
    llm, tokenizer = load_causal_lm(name_or_path, dtype=resolved)
    llm = llm.to(device).eval()
    for p in llm.parameters():
        p.requires_grad_(False)
    return llm, tokenizer, ChatLayout(tokenizer)


def stop_ids_for(tokenizer, layout):
    """End-of-turn ids of the chat template plus ``<|im_start|>`` where the vocabulary has it.

    Stopping on a new turn's start too mirrors the original generation scripts: a small model
    sometimes skips ``<|im_end|>`` and opens another turn.
    """
    ids = set(layout.stop_token_ids)
    start = tokenizer.get_vocab().get(CHATML_START)
    if start is not None:
        ids.add(start)
    return sorted(ids)


# Which tokens the repetition penalty counts as seen before the first new one (docs/released_code.md#decoding):
# "prompt": every prompt token (the released teacher passes its prompt to generate as input_ids); "reply": only
# the newline that opens the reply (released generate.py passes the speech systems' and the text-only system's
# prompts as inputs_embeds, with "\n" as the BOS token that input_ids then holds).
PENALTY_CONTEXTS = ("prompt", "reply")
SAMPLING_KEYS = ("temperature", "top_k", "top_p", "sampling_seed")


def decoding_options(hp, default_context="prompt"):
    """The :class:`DecodingOptions` of a stage config; keys it lacks keep plain greedy decoding."""
    from rellm.generation.decoding import DecodingOptions

    context = hp.get("repetition_penalty_context", default_context)
    if context not in PENALTY_CONTEXTS:
        raise ValueError(f"repetition_penalty_context must be one of {', '.join(PENALTY_CONTEXTS)}, got {context!r}")
    return DecodingOptions(
        repetition_penalty=float(hp.get("repetition_penalty", 1.0)),
        do_sample=bool(hp.get("do_sample", False)),
        temperature=float(hp.get("temperature", 1.0)),
        top_k=int(hp.get("top_k", 0)),
        top_p=float(hp.get("top_p", 1.0)),
        seed=int(hp.get("sampling_seed", 0)),
        penalty_context=context,
    )


def decoding_fingerprint(hp, default_context="prompt"):
    """The decoding options that change the text, for a stage's fingerprint: only those a config sets away from
    plain greedy decoding, so that a config without them (the mini recipe) keeps its fingerprint and outputs."""
    options = decoding_options(hp, default_context)
    out = {}
    if options.penalised:
        out.update(repetition_penalty=float(options.repetition_penalty),
                   repetition_penalty_context=options.penalty_context)
    if options.do_sample:
        out.update(do_sample=True, temperature=float(options.temperature), top_k=int(options.top_k),
                   top_p=float(options.top_p), sampling_seed=int(options.seed))
    return out


def build_decoder(llm, tokenizer, layout, hp, default_context="prompt"):
    """A :class:`GreedyDecoder` configured from the stage config's decoding keys (``default_context``: the
    repetition penalty's context when the config does not name one: stage 3 "prompt", stage 5 "reply")."""
    from rellm.generation.decoding import GreedyDecoder

    stops = stop_ids_for(tokenizer, layout)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    return GreedyDecoder(
        llm,
        stops,
        pad_token_id=pad,
        backend=hp["decoding_backend"],
        cuda_graphs=hp["cuda_graphs"],
        compile=hp["compile_decode"],
        min_new_tokens=hp["min_new_tokens"],
        options=decoding_options(hp, default_context),
    )


def options_fingerprint_base(hp, llm_key):
    """The options every generating stage fingerprints (what changes its text)."""
    return {
        llm_key: str(hp[llm_key]),
        "dtype": str(hp["dtype"]),
        "min_new_tokens": hp["min_new_tokens"],
        "batch_seed": hp.get("batch_seed", 0),
        **decoding_fingerprint(hp),  # empty for plain greedy: older configs keep their fingerprint
    }
