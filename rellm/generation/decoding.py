"""Decoding for a causal LM fed with ``inputs_embeds`` (a speech prefix or a text prompt).

Greedy by default; the settings are explicit (:class:`DecodingOptions`), nothing is inherited from a
checkpoint's ``generation_config``. The paper recipes set the released ones (greedy with Qwen-7B-Chat's
repetition penalty 1.1, docs/released_code.md#decoding), the mini recipe plain greedy.

Why not just ``llm.generate``: at 7B on one H100, plain ``generate()`` runs a decode step at 4.7x the
weight-streaming bound at batch 1, and 9x with unmerged LoRA layers (shared/bench/README.md). Two
things cost that time, and both are removed here:

* **LoRA in every step.** Partial LoRA (docs/method.md#partial-lora) is 1 only at speech positions, which all sit
  in the prompt. So LoRA matters in the prefill only; every decode step runs the frozen base weights.
  The static decoder reads the *base* weight of every projection (``.base_layer`` of a PEFT/PLoRA
  wrapper, or the ``nn.Linear`` itself through ``F.linear``), so no LoRA branch can run after the
  prefill whatever the wrapper does. The prefill goes through the model's own forward inside the
  caller's ``prefill_context`` (where the PLoRA position mask is set).
* **Per-step host overhead.** Hundreds of tiny kernel launches, mask rebuilding and cache
  concatenation per token. The static decoder keeps the KV cache in preallocated buffers, updates
  it in place (``index_copy_`` at a tensor-valued slot), computes one whole step from a fixed set of
  tensors and, on CUDA, records that step once as a CUDA graph (optionally ``torch.compile``d first)
  and replays it. transformers' own ``StaticCache`` + ``torch.compile(mode="reduce-overhead")``
  failed at 7B (bench README), hence this small self-contained loop.

Supported for the static path: Llama-style decoders (Llama, SmolLM2, Qwen2, Mistral, Qwen3: RMSNorm,
rotary positions, gated MLP, GQA). Anything else falls back to plain ``generate`` with a logged
reason. On CPU the static loop runs eagerly with attention sliced to the filled part of the cache;
it is no faster than ``generate`` there, so ``backend="auto"`` picks ``generate`` on CPU.

Outputs are token-for-token the greedy ``generate`` result (tested on CPU in fp32); left padding is
handled by the attention mask, and positions are the caller's ``position_ids`` (default
``cumsum(mask) - 1``), so a prompt's continuation does not depend on its batch neighbours.

The repetition penalty is HF's (``RepetitionPenaltyLogitsProcessor``: the logit of every token seen so far is
divided by the penalty when positive, multiplied by it when negative), applied by both backends. "Seen" is
the caller's per-row ``penalty_ids`` (what HF's ``input_ids`` held before the first new token: the whole
prompt for a prompt passed as ids, as the released teacher does) plus every generated token. Sampling
(``do_sample``) runs through plain ``generate`` with HF's warpers, seeded at every call.
"""
import contextlib
import logging
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "static", "hf")


@dataclass
class DecodeResult:
    """Greedy continuations of one batch, in input order."""

    tokens: list  # per row: generated ids, the stop token excluded
    hit_limit: list  # per row: max_new_tokens reached without a stop token (BLSP's ``early_stop``)
    backend: str = "static"
    stats: dict = field(default_factory=dict)


def default_position_ids(attention_mask):
    """Contiguous positions over real tokens (``cumsum(mask) - 1``), 0 on left padding."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def _base_model(llm):
    """The HF ``*ForCausalLM`` under a PEFT wrapper, if any."""
    if hasattr(llm, "get_base_model"):
        return llm.get_base_model()
    return llm


def _base_linear(module):
    """(weight, bias) of a projection, unwrapping LoRA wrappers so decode steps never run LoRA."""
    seen = 0
    while hasattr(module, "base_layer") and seen < 4:
        module, seen = module.base_layer, seen + 1
    if not isinstance(module, torch.nn.Linear):
        raise TypeError(f"{type(module).__name__} is not a linear layer")
    return module.weight, module.bias


# Released decoding (docs/method.md#expected-responses, #inference): greedy, nothing else. Every logits
# processor HF would build from a checkpoint's generation_config (Qwen2.5: repetition_penalty 1.05, top_k/top_p/temperature) is off.
GREEDY_SETTINGS = {"do_sample": False, "num_beams": 1, "repetition_penalty": 1.0}


@dataclass(frozen=True)
class DecodingOptions:
    """What shapes the choice of the next token besides the model (stage-3/5 config keys of the same names).

    The defaults are plain greedy decoding. ``repetition_penalty`` is HF's (1.0: off), applied to the
    caller's ``penalty_ids`` and the generated tokens. ``do_sample`` samples with HF's warpers: ``temperature``,
    ``top_k`` (0: off), ``top_p`` (1.0: off), the generator seeded with ``seed`` at every ``generate`` call
    (a batch draws the same tokens whichever shard decodes it). ``penalty_context``: which prompt tokens the
    penalty counts as seen (:meth:`GreedyDecoder.penalty_ids`): ``prompt`` all of them, ``reply`` only the last
    one (the newline that opens the reply).
    """

    repetition_penalty: float = 1.0
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0
    penalty_context: str = "prompt"

    def __post_init__(self):
        if not float(self.repetition_penalty) > 0:
            raise ValueError(f"repetition_penalty must be > 0 (1.0: off), got {self.repetition_penalty}")
        if not float(self.temperature) > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if int(self.top_k) < 0:
            raise ValueError(f"top_k must be >= 0 (0: off), got {self.top_k}")
        if not 0.0 < float(self.top_p) <= 1.0:
            raise ValueError(f"top_p must be in (0, 1] (1.0: off), got {self.top_p}")
        if self.penalty_context not in ("prompt", "reply"):
            raise ValueError(f"penalty_context must be prompt or reply, got {self.penalty_context!r}")

    @property
    def penalised(self):
        return float(self.repetition_penalty) != 1.0

    def hf_sampling(self):
        """HF ``generate`` keyword arguments of the sampling settings (empty when greedy)."""
        if not self.do_sample:
            return {}
        return {"do_sample": True, "temperature": float(self.temperature), "top_k": int(self.top_k),
                "top_p": float(self.top_p)}


def apply_repetition_penalty(logits, seen, penalty):
    """HF's repetition penalty on ``logits [B, V]``: where ``seen [B, V]`` is set, a positive logit is divided by
    ``penalty`` and a negative one multiplied by it (both make a seen token less likely for a penalty > 1)."""
    if float(penalty) == 1.0:
        return logits
    return torch.where(seen, torch.where(logits < 0, logits * penalty, logits / penalty), logits)


def seen_mask(penalty_ids, batch, vocab, device):
    """``[B, V]`` bool, set at the ids of each row's ``penalty_ids`` (a list of id lists; None: nothing seen)."""
    seen = torch.zeros(batch, vocab, dtype=torch.bool, device=device)
    if penalty_ids is None:
        return seen
    if len(penalty_ids) != batch:
        raise ValueError(f"penalty_ids has {len(penalty_ids)} rows for a batch of {batch}")
    for i, ids in enumerate(penalty_ids):
        ids = [int(t) for t in ids if 0 <= int(t) < vocab]
        if ids:
            seen[i, torch.tensor(ids, dtype=torch.long, device=device)] = True
    return seen


class ContextRepetitionPenalty:
    """An HF logits processor: :func:`apply_repetition_penalty` over a fixed per-row context (``seen [B, V]``) plus
    the tokens generated so far. HF's own processor sees only ``input_ids``, which an ``inputs_embeds`` prompt
    does not have (transformers 5 passes just the new tokens)."""

    def __init__(self, penalty, context):
        self.penalty, self.context = float(penalty), context

    def __call__(self, input_ids, scores):
        seen = self.context.clone()
        if input_ids.shape[-1]:
            seen.scatter_(1, input_ids.clamp(0, seen.shape[1] - 1), True)
        return apply_repetition_penalty(scores, seen, self.penalty)


@contextlib.contextmanager
def neutral_generation_config(llm):
    """Within the block, ``llm.generate`` sees a default ``GenerationConfig`` instead of the checkpoint's own.

    HF ``generate`` fills every setting the caller leaves unset from ``model.generation_config``
    (even when a ``generation_config`` is passed), so a checkpoint's repetition penalty or
    no-repeat n-gram size would silently apply. Swapping the default in makes the greedy
    settings the caller passes the only ones in force.
    """
    from transformers import GenerationConfig

    model = _base_model(llm)
    saved = getattr(model, "generation_config", None)
    model.generation_config = GenerationConfig()
    try:
        yield
    finally:
        model.generation_config = saved


def sampling_settings(temperature=1.0, top_p=1.0):
    """HF ``generate`` settings for nucleus sampling at ``temperature`` (no top-k, no repetition penalty): the
    interactive responder's option (``rellm.responder``); the recipes decode greedily."""
    if not float(temperature) > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if not 0 < float(top_p) <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    return {"do_sample": True, "num_beams": 1, "repetition_penalty": 1.0, "temperature": float(temperature),
            "top_p": float(top_p)}


def greedy_generate(llm, inputs_embeds, attention_mask, max_new_tokens, stop_token_ids, pad_token_id,
                    min_new_tokens=1, sampling=None, options=None, penalty_ids=None):
    """HF ``generate`` with exactly the released greedy settings (``GREEDY_SETTINGS``), nothing inherited;
    ``sampling`` (from :func:`sampling_settings`) samples instead. ``options`` (:class:`DecodingOptions`) adds the
    repetition penalty over ``penalty_ids`` + the new tokens, and its own seeded sampling."""
    from transformers import LogitsProcessorList

    options = options or DecodingOptions()
    kwargs = dict(sampling or {**GREEDY_SETTINGS, **options.hf_sampling()})
    if options.penalised:
        context = seen_mask(penalty_ids, inputs_embeds.shape[0], llm.get_output_embeddings().weight.shape[0],
                            inputs_embeds.device)
        kwargs["logits_processor"] = LogitsProcessorList([ContextRepetitionPenalty(options.repetition_penalty,
                                                                                   context)])
    seeded = options.do_sample and not sampling
    devices = [inputs_embeds.device] if seeded and inputs_embeds.is_cuda else []
    with neutral_generation_config(llm), torch.random.fork_rng(devices=devices, enabled=seeded):
        if seeded:
            torch.manual_seed(int(options.seed))
        return llm.generate(inputs_embeds=inputs_embeds, attention_mask=attention_mask, max_new_tokens=max_new_tokens,
                            min_new_tokens=min_new_tokens, eos_token_id=list(stop_token_ids),
                            pad_token_id=pad_token_id, **kwargs)


def static_decoding_support(llm):
    """``(True, "")`` when the static decoder can run ``llm``, else ``(False, reason)``."""
    model = _base_model(llm)
    inner = getattr(model, "model", None)
    needed = ("embed_tokens", "layers", "norm", "rotary_emb")
    if inner is None or any(not hasattr(inner, n) for n in needed) or not hasattr(model, "lm_head"):
        return False, f"{type(model).__name__} is not a Llama-style decoder (embed_tokens/layers/norm/rotary_emb)"
    cfg = model.config
    if getattr(cfg, "sliding_window", None) and getattr(cfg, "use_sliding_window", True) and cfg.model_type not in (
        "llama",
        "qwen2",
    ):
        return False, f"sliding-window attention ({cfg.model_type}) is not implemented in the static decoder"
    layer = inner.layers[0]
    try:
        attn, mlp = layer.self_attn, layer.mlp
        for m in (attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj, mlp.gate_proj, mlp.up_proj, mlp.down_proj):
            _base_linear(m)
        _ = layer.input_layernorm, layer.post_attention_layernorm, mlp.act_fn
    except (AttributeError, TypeError) as err:
        return False, f"unsupported layer structure ({err})"
    return True, ""


class _StaticState:
    """Preallocated buffers for one (batch, cache length) shape; reused across batches."""

    def __init__(self, spec, batch, cache_len, max_new_tokens, device, dtype, vocab=0):
        kv_shape = (batch, spec["num_kv_heads"], cache_len, spec["head_dim"])
        self.k = [torch.zeros(kv_shape, device=device, dtype=dtype) for _ in range(spec["num_layers"])]
        self.v = [torch.zeros(kv_shape, device=device, dtype=dtype) for _ in range(spec["num_layers"])]
        self.valid = torch.zeros(batch, cache_len, device=device, dtype=torch.bool)
        self.token = torch.zeros(batch, device=device, dtype=torch.long)
        self.position = torch.zeros(batch, device=device, dtype=torch.long)
        self.slot = torch.zeros(1, device=device, dtype=torch.long)
        self.step = torch.zeros(1, device=device, dtype=torch.long)
        self.finished = torch.zeros(batch, device=device, dtype=torch.bool)
        self.out = torch.zeros(batch, max_new_tokens, device=device, dtype=torch.long)
        # tokens the repetition penalty applies to (prompt context + generated); only with a penalty
        self.seen = torch.zeros(batch, vocab, device=device, dtype=torch.bool) if vocab else None
        self.batch, self.cache_len, self.max_new_tokens = batch, cache_len, max_new_tokens
        self.graph = None


class GreedyDecoder:
    """Greedy decoding with a static KV cache; LoRA (if any) in the prefill only. ``options``
    (:class:`DecodingOptions`) adds the repetition penalty (both backends) or sampling (plain ``generate``).

    ``backend``: ``static`` (own loop), ``hf`` (plain ``generate``), ``auto`` (static on CUDA when
    the architecture is supported, plain ``generate`` on CPU where both run at the same speed). ``cuda_graphs`` records the decode step as a CUDA graph (CUDA only);
    ``compile`` runs it through ``torch.compile`` first. Both fall back, with a warning, to the
    eager step if they fail, so a decode never dies of an optimisation.
    """

    def __init__(
        self,
        llm,
        stop_token_ids,
        pad_token_id=None,
        backend="auto",
        cuda_graphs=True,
        compile=False,
        min_new_tokens=1,
        cache_len_multiple=64,
        check_stop_every=8,
        options=None,
    ):
        if backend not in BACKENDS:
            raise ValueError(f"decoding backend must be one of {BACKENDS}, got {backend!r}")
        self.llm = llm
        self.stop_token_ids = sorted({int(t) for t in stop_token_ids})
        if not self.stop_token_ids:
            raise ValueError("GreedyDecoder needs at least one stop token id")
        self.pad_token_id = int(self.stop_token_ids[0] if pad_token_id is None else pad_token_id)
        self.min_new_tokens = int(min_new_tokens)
        self.cache_len_multiple = int(cache_len_multiple)
        self.check_stop_every = max(1, int(check_stop_every))
        self.options = options or DecodingOptions()
        ok, reason = static_decoding_support(llm)
        if backend == "static" and not ok:
            raise ValueError(f"static decoding is not possible for this model: {reason}; use decoding_backend=hf")
        on_cuda = next(llm.parameters()).is_cuda
        if backend == "auto":
            # CPU: the static loop and generate() run at the same speed (measured with SmolLM2-135M,
            # bench/decode_speed.py), so the plain path is used; the win is GPU launch overhead.
            if on_cuda and not ok:
                logger.warning("static decoding unavailable (%s); using plain generate()", reason)
            backend = "static" if (on_cuda and ok) else "hf"
        self.backend = backend
        self.cuda_graphs = bool(cuda_graphs)
        self.compile = bool(compile)
        self._states = {}
        self._step_fn = None
        self._graph_failed = False
        if self.backend == "static":
            self._collect_weights()

    # ------------------------------------------------------------------ weights
    def _collect_weights(self):
        model = _base_model(self.llm)
        inner, cfg = model.model, model.config
        self._embed = inner.embed_tokens.weight
        self._norm, self._rotary = inner.norm, inner.rotary_emb
        self._lm_head = _base_linear(model.lm_head)
        self._layers = []
        for layer in inner.layers[: cfg.num_hidden_layers]:
            attn, mlp = layer.self_attn, layer.mlp
            self._layers.append(
                {
                    "ln1": layer.input_layernorm,
                    "ln2": layer.post_attention_layernorm,
                    "q": _base_linear(attn.q_proj),
                    "k": _base_linear(attn.k_proj),
                    "v": _base_linear(attn.v_proj),
                    "o": _base_linear(attn.o_proj),
                    "q_norm": getattr(attn, "q_norm", None),  # Qwen3
                    "k_norm": getattr(attn, "k_norm", None),
                    "scaling": getattr(attn, "scaling", None),
                    "gate": _base_linear(mlp.gate_proj),
                    "up": _base_linear(mlp.up_proj),
                    "down": _base_linear(mlp.down_proj),
                    "act": mlp.act_fn,
                }
            )
        heads = cfg.num_attention_heads
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
        self._spec = {
            "num_layers": len(self._layers),
            "num_heads": heads,
            "num_kv_heads": getattr(cfg, "num_key_value_heads", None) or heads,
            "head_dim": head_dim,
        }
        self._stop = torch.tensor(self.stop_token_ids, device=self._embed.device)

    # ------------------------------------------------------------------ public API
    def penalty_ids(self, prompt_rows):
        """The ``penalty_ids`` for prompts of these token ids (per row; the speech systems pass their text tokens):
        all of them, or the last one with ``penalty_context: reply``; None without a repetition penalty."""
        if not self.options.penalised:
            return None
        if self.options.penalty_context == "reply":
            return [list(row[-1:]) for row in prompt_rows]
        return [list(row) for row in prompt_rows]

    @torch.no_grad()
    def generate(self, inputs_embeds, attention_mask, position_ids=None, max_new_tokens=48, prefill_context=None,
                 sampling=None, penalty_ids=None):
        """Continuations of a left-padded batch (greedy unless the decoder's options or ``sampling`` sample).

        ``prefill_context``: a zero-argument callable returning a context manager entered around the
        prompt forward only (e.g. the PLoRA position mask); decode steps run outside it. ``sampling``
        (:func:`sampling_settings`) samples instead of greedy decoding, through plain ``generate`` whatever
        the backend (the static loop is greedy only). ``penalty_ids``: per row, the ids the repetition penalty
        counts as already seen before the first new token (None: none; unused without a penalty).
        """
        if inputs_embeds.dim() != 3 or attention_mask.shape != inputs_embeds.shape[:2]:
            raise ValueError(
                f"expected inputs_embeds [B, T, H] and attention_mask [B, T], got "
                f"{tuple(inputs_embeds.shape)} and {tuple(attention_mask.shape)}"
            )
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        if self.backend == "hf" or sampling or self.options.do_sample:
            return self._generate_hf(inputs_embeds, attention_mask, max_new_tokens, prefill_context, sampling,
                                     penalty_ids)
        return self._generate_static(inputs_embeds, attention_mask, position_ids, max_new_tokens, prefill_context,
                                     penalty_ids)

    # ------------------------------------------------------------------ plain HF path
    def _generate_hf(self, inputs_embeds, attention_mask, max_new_tokens, prefill_context, sampling=None,
                     penalty_ids=None):
        # HF derives positions from the mask itself (cumsum - 1), which equals our default for
        # left-padded prompts. LoRA: the whole call runs inside prefill_context, so it must apply
        # LoRA to the first forward only (PartialLoRA.prefill_only, as inference.lora_prefill_context
        # does); then the incremental steps here are LoRA-free too.
        ctx = prefill_context() if prefill_context else contextlib.nullcontext()
        with ctx:
            out = greedy_generate(self.llm, inputs_embeds, attention_mask, max_new_tokens, self.stop_token_ids,
                                  self.pad_token_id, min_new_tokens=self.min_new_tokens, sampling=sampling,
                                  options=self.options, penalty_ids=penalty_ids)
        # transformers 5 returns only the new tokens for an inputs_embeds prompt.
        return self._finish(out[:, -max_new_tokens:] if out.shape[1] > max_new_tokens else out, max_new_tokens, "hf")

    def _finish(self, out, max_new_tokens, backend, stats=None):
        stop = set(self.stop_token_ids)
        tokens, hit = [], []
        for row in out.tolist():
            cut = next((i for i, t in enumerate(row) if t in stop), None)
            tokens.append(row if cut is None else row[:cut])
            hit.append(cut is None and len(row) >= max_new_tokens)
        return DecodeResult(tokens, hit, backend, stats or {})

    # ------------------------------------------------------------------ static path
    def _prefill(self, inputs_embeds, attention_mask, position_ids, prefill_context):
        ctx = prefill_context() if prefill_context else contextlib.nullcontext()
        with ctx:
            out = self.llm(
                inputs_embeds=inputs_embeds,
                attention_mask=attention_mask,
                position_ids=position_ids,
                use_cache=True,
                logits_to_keep=1,
            )
        cache = getattr(out, "cache", None)
        if cache is None:
            cache = getattr(out, "past_key_values", None)
        if cache is None:
            raise RuntimeError("the model returned no KV cache from its prompt forward (use_cache=True)")
        if hasattr(cache, "layers"):
            kv = [(layer.keys, layer.values) for layer in cache.layers]
        elif hasattr(cache, "key_cache"):
            kv = list(zip(cache.key_cache, cache.value_cache))
        else:
            kv = [tuple(x) for x in cache]
        return out.logits[:, -1, :], kv

    def _state_for(self, batch, prompt_len, max_new_tokens, device, dtype):
        need = prompt_len + max_new_tokens
        cache_len = int(math.ceil(need / self.cache_len_multiple) * self.cache_len_multiple)
        key = (batch, cache_len, max_new_tokens, dtype)
        if key not in self._states:
            # One shape per key; a CUDA graph is recorded per shape, so keep the set small.
            if len(self._states) >= 8:
                self._states.pop(next(iter(self._states)))
            vocab = self._lm_head[0].shape[0] if self.options.penalised else 0
            self._states[key] = _StaticState(self._spec, batch, cache_len, max_new_tokens, device, dtype, vocab)
        return self._states[key]

    def _mask_early_stop(self, logits, step):
        """Forbid the stop tokens while fewer than ``min_new_tokens`` tokens exist (graph-safe)."""
        if self.min_new_tokens <= 0:
            return logits
        stop_logits = logits.index_select(1, self._stop)
        blocked = torch.where(step < self.min_new_tokens, torch.full_like(stop_logits, -math.inf), stop_logits)
        return logits.index_copy(1, self._stop, blocked)

    def _step(self, s, kv_len):
        """One decode step on state ``s`` (in place). ``kv_len`` slices the cache in eager mode."""
        spec = self._spec
        b, nh, nkv, hd = s.batch, spec["num_heads"], spec["num_kv_heads"], spec["head_dim"]
        x = F.embedding(s.token, self._embed).unsqueeze(1)  # [B, 1, H]
        cos, sin = self._rotary(x, s.position.unsqueeze(1))  # [B, 1, D]
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)  # broadcast over heads
        s.valid.index_fill_(1, s.slot, True)
        mask = s.valid[:, None, None, :kv_len]
        for i, w in enumerate(self._layers):
            h = w["ln1"](x)
            q = F.linear(h, *w["q"]).view(b, 1, nh, hd).transpose(1, 2)
            k = F.linear(h, *w["k"]).view(b, 1, nkv, hd).transpose(1, 2)
            v = F.linear(h, *w["v"]).view(b, 1, nkv, hd).transpose(1, 2)
            if w["q_norm"] is not None:
                q, k = w["q_norm"](q), w["k_norm"](k)
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin
            s.k[i].index_copy_(2, s.slot, k)
            s.v[i].index_copy_(2, s.slot, v)
            # GQA with one query token: the nh // nkv query heads sharing a KV head become that
            # head's "query rows" (head h uses KV head h // group, as in HF's repeat_kv), so one
            # plain SDPA call covers it without repeating K/V.
            a = F.scaled_dot_product_attention(
                q.reshape(b, nkv, nh // nkv, hd),
                s.k[i][:, :, :kv_len],
                s.v[i][:, :, :kv_len],
                attn_mask=mask,
                scale=w["scaling"],
            )
            x = x + F.linear(a.reshape(b, 1, nh * hd), *w["o"])
            h = w["ln2"](x)
            x = x + F.linear(w["act"](F.linear(h, *w["gate"])) * F.linear(h, *w["up"]), *w["down"])
        logits = F.linear(self._norm(x)[:, 0], *self._lm_head)
        logits = self._mask_early_stop(logits, s.step)
        if s.seen is not None:  # HF applies its processors to fp32 logits
            logits = apply_repetition_penalty(logits.float(), s.seen, self.options.repetition_penalty)
        nxt = torch.where(s.finished, torch.full_like(s.token, self.pad_token_id), logits.argmax(-1))
        if s.seen is not None:
            s.seen.scatter_(1, nxt.unsqueeze(1), True)
        s.out.index_copy_(1, s.step, nxt.unsqueeze(1))
        s.finished.logical_or_(torch.isin(nxt, self._stop))
        s.token.copy_(nxt)
        s.position.add_(1)
        s.slot.add_(1)
        s.step.add_(1)

    def _load(self, s, first_logits, kv, attention_mask, position_ids, penalty_ids=None):
        t = attention_mask.shape[1]
        for i, (k, v) in enumerate(kv):
            s.k[i][:, :, :t].copy_(k)
            s.v[i][:, :, :t].copy_(v)
        s.valid.zero_()
        s.valid[:, :t].copy_(attention_mask.bool())
        s.step.zero_()
        first_logits = self._mask_early_stop(first_logits.float(), s.step)
        if s.seen is not None:
            s.seen.copy_(seen_mask(penalty_ids, s.batch, s.seen.shape[1], s.seen.device))
            first_logits = apply_repetition_penalty(first_logits, s.seen, self.options.repetition_penalty)
        first = first_logits.argmax(-1)
        if s.seen is not None:
            s.seen.scatter_(1, first.unsqueeze(1), True)
        s.out.fill_(self.pad_token_id)
        s.out[:, 0].copy_(first)
        s.finished.copy_(torch.isin(first, self._stop))
        s.token.copy_(first)
        s.position.copy_(position_ids[:, -1] + 1)
        s.slot.fill_(t)
        s.step.fill_(1)

    def _graph_step(self, s):
        """Replay callable for state ``s``: a CUDA graph of one step, or None if unavailable."""
        if not (self.cuda_graphs and s.k[0].is_cuda) or self._graph_failed:
            return None
        if s.graph is not None:
            return s.graph.replay
        step = (lambda st: self._step(st, st.cache_len))
        if self.compile:
            if self._step_fn is None:
                self._step_fn = torch.compile(step, dynamic=False, fullgraph=False)
            step = self._step_fn
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):  # warm-up (and compile) outside the capture
                    s.slot.zero_()  # each warm-up step writes slot 0 / output column 0: always in range
                    s.step.zero_()
                    step(s)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                step(s)
            # The warm-up advanced the state; _load() puts this batch's prefill state in place.
            s.graph = graph
            return graph.replay
        except Exception as err:  # noqa: BLE001 (a failed capture must not kill the decode: run eagerly)
            logger.warning("CUDA graph capture of the decode step failed (%s); decoding eagerly", repr(err)[:300])
            self._graph_failed = True
            torch.cuda.synchronize()
            return None

    def _generate_static(self, inputs_embeds, attention_mask, position_ids, max_new_tokens, prefill_context,
                         penalty_ids=None):
        if position_ids is None:
            position_ids = default_position_ids(attention_mask)
        batch, prompt_len = attention_mask.shape
        first_logits, kv = self._prefill(inputs_embeds, attention_mask, position_ids, prefill_context)
        dtype = kv[0][0].dtype
        s = self._state_for(batch, prompt_len, max_new_tokens, inputs_embeds.device, dtype)
        # Record the graph (once per shape) before loading this batch: the capture's warm-up steps
        # scribble on the buffers, and _load() then overwrites everything a step reads.
        replay = self._graph_step(s) if max_new_tokens > 1 else None
        self._load(s, first_logits, kv, attention_mask, position_ids, penalty_ids)
        steps = 1
        if replay is None:
            is_cuda = s.k[0].is_cuda
            while steps < max_new_tokens:
                # Eager: attend only to the filled part of the cache (cheaper on CPU than a full
                # masked cache); the step count is tracked on the host, so no sync is needed.
                self._step(s, prompt_len + steps)
                steps += 1
                if (not is_cuda or steps % self.check_stop_every == 0) and bool(s.finished.all()):
                    break
        else:
            while steps < max_new_tokens:
                replay()
                steps += 1
                # Checking for "all rows stopped" syncs with the GPU, so do it every few steps.
                if steps % self.check_stop_every == 0 and bool(s.finished.all()):
                    break
        # cuda_graph: whether the steps replayed a recorded graph (False: the eager loop, e.g. a failed capture)
        stats = {"steps": steps, "cuda_graph": replay is not None}
        return self._finish(s.out[:, :steps], max_new_tokens, "static", stats)


def _rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)
