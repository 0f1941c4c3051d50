"""The speech-LLM of BLSP-Emo and RE-LLM: frozen LLM + PLoRA + speech adapter + auxiliary heads.

    Whisper states [B, T, D] (cached, trimmed)  --+
    emotion embedding [B, E] (RE-LLM only)     --+--> SpeechAdapter --> E [B, N, H], M [B, N]
                                                                        |           |
    prompt tokens (system + instruction) | E | header + target + end ---> LLM (LoRA only on E)
                                                                        masked mean -> emotion / A,V,D heads

One class serves both systems: ``emotion_dim=0`` is BLSP-Emo, ``emotion_dim > 0`` adds
RE-LLM's emotion nuance module. The frozen bases (LLM, and the Whisper / emotion
encoders whose outputs are cached by stage 2) are never saved with the model: a
checkpoint holds ``own_state_dict()`` (adapter, LoRA, heads) plus the base-model ids.

Sequences are packed without gaps (segments back to back, one padding run per row),
so position ids are contiguous; training right-pads, generation left-pads.
"""
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from rellm.models.adapter import SpeechAdapter
from rellm.models.chat_layout import ChatLayout
from rellm.models.heads import AVDRegressionHead, EmotionClassifierHead, masked_mean
from rellm.models.plora import ALL_POSITIONS, PartialLoRA, add_lora

logger = logging.getLogger(__name__)

FINAL_WEIGHTS = "trainable.safetensors"
FINAL_CONFIG = "model.json"

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}


def resolve_dtype(dtype, device="cpu"):
    """``None``/``"auto"`` -> bf16 on a bf16-capable GPU, else fp32; strings -> ``torch.dtype``."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        if str(device).startswith("cuda") and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    try:
        return DTYPES[str(dtype)]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)} or auto") from None


def load_causal_lm(name_or_path, dtype=None):
    """``(model, tokenizer)`` through ``rellm.pretrained`` (registry names, local folders)."""
    try:
        from rellm.pretrained import load_causal_lm as _load
    except ImportError:
        _load = None
    if _load is not None:
        return _load(name_or_path, dtype=dtype)
    if not Path(name_or_path).is_dir():
        raise FileNotFoundError(
            f"cannot load LLM {name_or_path!r}: rellm.pretrained is not available and it is not a local folder; "
            "run `python -m rellm.pretrained fetch smollm2-135m-instruct` or point llm_name at a HF model folder"
        )
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=dtype, local_files_only=True)
    return model, AutoTokenizer.from_pretrained(name_or_path, local_files_only=True)


def final_dir(model_dir):
    """``<experiment>/final``: where stage 4 (or an importer) leaves the model stage 5 loads."""
    return Path(model_dir) / "final"


def has_final_state(model_dir):
    final = final_dir(model_dir)
    return (final / FINAL_CONFIG).is_file() and (final / FINAL_WEIGHTS).is_file()


def save_final_state(folder, state, meta):
    """Write ``folder/trainable.safetensors`` (tensors only: loading it can run no code) and ``folder/model.json``."""
    from safetensors.torch import save_file

    from rellm.utils.io import atomic_path, atomic_write_json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / FINAL_WEIGHTS) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp))
    atomic_write_json(folder / FINAL_CONFIG, meta)


def load_final_state(model_dir):
    """``(state, meta)`` of an experiment's ``final/``: the trained tensors and ``model.json``."""
    from safetensors.torch import load_file

    final = final_dir(model_dir)
    if not has_final_state(model_dir):
        raise FileNotFoundError(
            f"{final} has no trained model ({FINAL_CONFIG}, {FINAL_WEIGHTS}); run stage 4 for this experiment first"
        )
    with open(final / FINAL_CONFIG, encoding="utf-8") as f:
        meta = json.load(f)
    return load_file(str(final / FINAL_WEIGHTS), device="cpu"), meta


@dataclass
class PackedSequences:
    """A packed LLM input: ``inputs_embeds [B, L, H]`` plus masks and the target bookkeeping."""

    inputs_embeds: torch.Tensor
    attention_mask: torch.Tensor  # bool [B, L]
    position_ids: torch.Tensor  # [B, L]
    lora_mask: torch.Tensor  # bool [B, L], True at speech positions
    predict_index: tuple = None  # (batch idx, position idx) of the positions predicting each target token
    target_ids: torch.Tensor = None  # [num_targets]
    shared_prefix: tuple = ()  # token ids every row starts with (right-padded layout only)

    @property
    def has_padding(self):
        return not bool(self.attention_mask.all())


class SpeechLLM(nn.Module):
    """Frozen causal LLM with PLoRA, a speech adapter and auxiliary emotion heads.

    Arguments
    ---------
    llm : str or transformers model
        Registry name or local folder (loaded through ``rellm.pretrained``), or a built model.
    speech_dim : int
        Width of the cached Whisper states.
    emotion_dim : int
        Width of the emotion embedding fused by the emotion nuance module (0: BLSP-Emo).
    tokenizer : tokenizer, optional
        Needed when ``llm`` is a built model.
    llm_dtype : str, optional
        Dtype of the frozen LLM weights (``auto``: bf16 on capable GPUs, fp32 on CPU).
    lora_r, lora_alpha, lora_dropout, lora_target_modules :
        peft LoRA settings (``lora_r=0``: no LoRA).
    lora_scope : str
        ``speech`` (partial LoRA, method.md 1.4) or ``all`` (plain LoRA at every position).
    adapter_bottleneck_dim : int
        Inner width of the adapter bottleneck (512).
    gradient_checkpointing : bool
        Recompute LLM activations in the backward pass (memory for time).
    cache_prompt_prefix : bool
        Compute the keys/values of the prompt shared by every row (system turn + instruction) once
        and reuse them: with partial LoRA they do not depend on any trainable parameter, so
        recomputing them every step (forward and backward) is pure waste.
    """

    def __init__(self, llm, speech_dim, emotion_dim=0, tokenizer=None, llm_dtype="auto", lora_r=16, lora_alpha=16,
                 lora_dropout=0.05, lora_target_modules=("q_proj", "k_proj", "v_proj", "o_proj"), lora_scope="speech",
                 adapter_bottleneck_dim=512, gradient_checkpointing=False, attn_implementation="sdpa",
                 cache_prompt_prefix=True):
        super().__init__()
        if lora_scope not in ("speech", "all"):
            raise ValueError(f"lora_scope must be 'speech' or 'all', got {lora_scope!r}")
        if isinstance(llm, (str, Path)):
            self.llm_name = str(llm)
            hint = "cuda" if torch.cuda.is_available() else "cpu"  # stage 4 resolves "auto" with --ngpu first
            model, loaded_tok = load_causal_lm(self.llm_name, dtype=resolve_dtype(llm_dtype, hint))
            tokenizer = tokenizer or loaded_tok
        else:
            model = llm
            self.llm_name = getattr(model.config, "_name_or_path", None) or type(model).__name__
        if tokenizer is None:
            raise ValueError("a tokenizer is needed when the LLM is passed as a built model")
        if attn_implementation and hasattr(model, "set_attn_implementation"):
            try:
                model.set_attn_implementation(attn_implementation)
            except (ValueError, ImportError) as err:  # e.g. an architecture without SDPA support
                logger.warning("keeping the LLM's attention implementation (%s)", err)
        self.tokenizer = tokenizer
        self.layout = ChatLayout(tokenizer)
        self.cache_prompt_prefix = bool(cache_prompt_prefix)
        self._prefix_kv = {}
        self.lora_scope = lora_scope
        hidden = model.config.hidden_size
        self.config = {
            "llm": self.llm_name, "speech_dim": int(speech_dim), "emotion_dim": int(emotion_dim),
            "llm_dtype": str(llm_dtype), "lora_r": int(lora_r), "lora_alpha": lora_alpha,
            "lora_dropout": float(lora_dropout), "lora_target_modules": list(lora_target_modules),
            "lora_scope": lora_scope, "adapter_bottleneck_dim": int(adapter_bottleneck_dim),
            "cache_prompt_prefix": self.cache_prompt_prefix,
        }
        for p in model.parameters():
            p.requires_grad_(False)
        if lora_r > 0:
            self.llm = add_lora(model, lora_r, lora_alpha, lora_dropout, lora_target_modules)
            self.plora = PartialLoRA(self.llm)
        else:
            self.llm, self.plora = model, None
        if gradient_checkpointing:
            self.base_llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.adapter = SpeechAdapter(speech_dim, hidden, emotion_dim, adapter_bottleneck_dim)
        self.emotion_head = EmotionClassifierHead(hidden)
        self.avd_head = AVDRegressionHead(hidden)
        self.set_trainable(adapter=True, lora=lora_r > 0, emotion_head=True, avd_head=True)

    # ------------------------------------------------------------------ structure
    @property
    def base_llm(self):
        """The HF causal LM (LoRA layers injected in place when peft-wrapped)."""
        return self.llm.get_base_model() if hasattr(self.llm, "get_base_model") else self.llm

    @property
    def emotion_dim(self):
        return self.adapter.emotion_dim

    def set_trainable(self, adapter=True, lora=False, emotion_head=False, avd_head=False):
        """Choose what the next training step updates; the LLM base weights stay frozen."""
        self.adapter.requires_grad_(adapter)
        self.emotion_head.requires_grad_(emotion_head)
        self.avd_head.requires_grad_(avd_head)
        for name, p in self.llm.named_parameters():
            p.requires_grad_(bool(lora) and "lora_" in name)

    def own_state_dict(self):
        """The parameters this model adds to its frozen bases: adapter, LoRA matrices, heads."""
        state = {}
        for prefix, module in (("adapter.", self.adapter), ("emotion_head.", self.emotion_head),
                               ("avd_head.", self.avd_head)):
            state.update({prefix + k: v for k, v in module.state_dict().items()})
        state.update({"llm." + n: p.detach() for n, p in self.llm.named_parameters() if "lora_" in n})
        return state

    def load_own_state_dict(self, state, strict=True):
        """Load ``own_state_dict()`` tensors; with ``strict`` every name must match both ways."""
        own = dict(self.named_parameters())
        own.update(dict(self.named_buffers()))
        expected = set(self.own_state_dict())
        unexpected = sorted(set(state) - expected)
        missing = sorted(expected - set(state))
        if strict and (unexpected or missing):
            raise ValueError(
                f"checkpoint does not match this model: missing {missing[:5]} ({len(missing)}), "
                f"unexpected {unexpected[:5]} ({len(unexpected)}); was it trained with another config?"
            )
        with torch.no_grad():
            for name, value in state.items():
                if name in own:
                    if own[name].shape != value.shape:
                        raise ValueError(f"{name}: checkpoint shape {tuple(value.shape)} != model {tuple(own[name].shape)}")
                    own[name].copy_(value)
        return missing, unexpected

    # ------------------------------------------------------------------ speech side
    def encode_speech(self, whisper_states, lengths, emotion_embedding=None):
        """Adapter output for a batch of Whisper states.

        Arguments: ``whisper_states [B, T, D]`` (fp16 cache is fine), ``lengths LongTensor[B]`` in
        frames, ``emotion_embedding [B, E]`` or None (required iff the model has the emotion nuance module).
        Returns ``(E [B, N, H], M bool [B, N])``: speech embeddings for the LLM and their mask.
        """
        dtype = self.adapter.fc1.weight.dtype
        if emotion_embedding is not None and self.emotion_dim:
            emotion_embedding = emotion_embedding.to(dtype)
        else:
            emotion_embedding = None
        return self.adapter(whisper_states.to(dtype), lengths, emotion_embedding)

    def pooled(self, E, M):
        return masked_mean(E.float(), M)

    def classify_emotion(self, E, M):
        """5-way emotion logits ``[B, 5]`` (order of ``rellm.data.emotions.EMOTIONS``) from the pooled adapter output."""
        return self.emotion_head(self.pooled(E, M).to(self.emotion_head.proj.weight.dtype))

    def predict_avd(self, E, M):
        """``[B, 3]`` predictions in [arousal, valence, dominance] order from the pooled adapter output."""
        return self.avd_head(self.pooled(E, M).to(self.avd_head.proj.weight.dtype))

    # ------------------------------------------------------------------ packing
    def pack(self, prompt_ids, prompt_lens, speech=None, tail_ids=None, tail_lens=None, label_start=None,
             left_pad=False):
        """Pack ``prompt | speech | tail`` per row without gaps.

        ``prompt_ids [B, P]`` / ``tail_ids [B, S]`` are right-padded token ids with absolute
        lengths ``prompt_lens`` / ``tail_lens``; ``speech = (E, M)`` or None; ``label_start [B]``
        (tail positions before it carry no loss; None: no targets). Returns ``PackedSequences``.
        """
        device = prompt_ids.device
        B = prompt_ids.shape[0]
        embed = self.base_llm.get_input_embeddings()
        zeros = torch.zeros(B, dtype=torch.long, device=device)
        if speech is not None:
            E, M = speech
            N = M.sum(1)
        else:
            E, N = None, zeros
        if tail_ids is None:
            tail_ids, tail_lens = torch.zeros(B, 1, dtype=torch.long, device=device), zeros
        P, S = prompt_lens.to(device), tail_lens.to(device)
        total = P + N + S
        L = int(total.max())
        t = torch.arange(L, device=device)[None, :].expand(B, L)
        offset = (L - total)[:, None] if left_pad else zeros[:, None]
        local = t - offset
        valid = (local >= 0) & (local < total[:, None])
        in_prompt = valid & (local < P[:, None])
        in_speech = valid & (local >= P[:, None]) & (local < (P + N)[:, None])
        in_tail = valid & (local >= (P + N)[:, None])
        p_idx = local.clamp(0, prompt_ids.shape[1] - 1)
        s_idx = (local - (P + N)[:, None]).clamp(0, tail_ids.shape[1] - 1)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.where(in_prompt, prompt_ids.gather(1, p_idx),
                          torch.where(in_tail, tail_ids.gather(1, s_idx), torch.full_like(t, pad_id)))
        embeds = embed(ids)
        if E is not None:
            e_idx = (local - P[:, None]).clamp(0, max(E.shape[1] - 1, 0))
            speech_g = E.to(embeds.dtype).gather(1, e_idx[..., None].expand(-1, -1, E.shape[-1]))
            embeds = torch.where(in_speech[..., None], speech_g, embeds)
        packed = PackedSequences(embeds, valid, local.clamp_min(0), in_speech)
        if not left_pad and B > 0 and int(P.min()) > 0:
            # the longest prefix every row's prompt starts with (all of it when the rows share one prompt;
            # e.g. the system turn's first tokens when SER question turns are mixed with behaviour turns)
            p0 = int(P.min())
            same = (prompt_ids[:, :p0] == prompt_ids[:1, :p0]).all(0)
            common = int(same.long().cumprod(0).sum())
            if common > 0:
                packed.shared_prefix = tuple(prompt_ids[0, :common].tolist())
        if label_start is not None:
            labelled = in_tail & (s_idx >= label_start.to(device)[:, None])
            b_idx, pos = labelled.nonzero(as_tuple=True)
            packed.predict_index = (b_idx, pos - 1)
            packed.target_ids = ids[b_idx, pos]
        return packed

    # ------------------------------------------------------------------ LLM side
    def _lora_mask_for(self, packed, use_lora):
        if not use_lora or self.plora is None:
            return None
        if self.lora_scope == "all":
            return ALL_POSITIONS
        return packed.lora_mask if bool(packed.lora_mask.any()) else None

    def _prefix_usable(self, packed, lora_mask):
        if not (self.cache_prompt_prefix and packed.shared_prefix) or isinstance(lora_mask, str):
            return 0
        p = len(packed.shared_prefix)
        if lora_mask is not None and bool(lora_mask[:, :p].any()):
            return 0
        if packed.predict_index is not None and packed.predict_index[1].numel() and \
                int(packed.predict_index[1].min()) < p:
            return 0  # a target is predicted from inside the prefix: its hidden state is needed
        return p if p < packed.inputs_embeds.shape[1] else 0

    @torch.no_grad()
    def _prefix_keys_values(self, prefix, device, dtype):
        """Per-layer (key, value) of the frozen LLM on ``prefix`` (LoRA off), computed once per prompt."""
        key = (prefix, str(device), dtype, torch.is_autocast_enabled(device.type))
        if key not in self._prefix_kv:
            from transformers import DynamicCache

            if len(self._prefix_kv) >= 16:
                self._prefix_kv.clear()
            ids = torch.tensor([prefix], device=device)
            embeds = self.base_llm.get_input_embeddings()(ids)
            if self.plora is not None:
                self.plora.set_mask(None)
            cache = DynamicCache(config=self.base_llm.config)
            self.base_llm.get_decoder()(inputs_embeds=embeds, cache=cache, use_cache=True)
            self._prefix_kv[key] = [(layer.keys, layer.values) for layer in cache.layers]
        return self._prefix_kv[key]

    def llm_hidden(self, packed, use_lora=True):
        """Last hidden states of the LLM on ``packed`` (LoRA on speech positions only).

        Returns ``(hidden, offset)``: ``hidden [B, L - offset, H]`` covers positions ``offset..L-1``;
        ``offset`` > 0 when the shared prompt prefix came from the key/value cache.
        """
        from transformers import DynamicCache

        backbone = self.base_llm.get_decoder()
        lora_mask = self._lora_mask_for(packed, use_lora)
        p = self._prefix_usable(packed, lora_mask)
        embeds, positions = packed.inputs_embeds[:, p:], packed.position_ids[:, p:]
        mask = packed.attention_mask.long() if packed.has_padding else None  # None: SDPA's causal fast path
        kwargs = {}
        if p:
            B = embeds.shape[0]
            kv = self._prefix_keys_values(packed.shared_prefix, embeds.device, embeds.dtype)
            kwargs = {"cache": DynamicCache(ddp_cache_data=[(k.expand(B, -1, -1, -1), v.expand(B, -1, -1, -1))
                                                            for k, v in kv], config=self.base_llm.config),
                      "use_cache": True}
            if mask is None:
                mask = torch.ones(packed.attention_mask.shape, dtype=torch.long, device=embeds.device)
            if isinstance(lora_mask, torch.Tensor):
                lora_mask = lora_mask[:, p:]
        else:
            kwargs = {"use_cache": False}
        if self.plora is not None:
            self.plora.set_mask(lora_mask)
        try:
            out = backbone(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, **kwargs)
        finally:
            if self.plora is not None:
                self.plora.set_mask(None)
        return out.last_hidden_state, p

    def target_logits(self, packed, use_lora=True):
        """Next-token logits ``[num_targets, V]`` at the positions predicting each target token.

        Only those rows go through the LM head: no ``[B, L, V]`` tensor is ever built.
        """
        hidden, offset = self.llm_hidden(packed, use_lora)
        b, pos = packed.predict_index
        return self.base_llm.get_output_embeddings()(hidden[b, pos - offset])

    def forward(self, whisper_states, lengths, emotion_embedding, prompt_ids, prompt_lens, tail_ids, tail_lens, label_start):
        """Training forward (student branch): speech -> adapter -> LLM logits at the target positions.

        Returns a dict: ``logits [num_targets, V]``, ``target_ids``, ``emotion_logits [B, 5]``,
        ``avd [B, 3]``, ``speech_tokens`` (N per row).
        """
        E, M = self.encode_speech(whisper_states, lengths, emotion_embedding)
        packed = self.pack(prompt_ids, prompt_lens, (E, M), tail_ids, tail_lens, label_start)
        logits = self.target_logits(packed, use_lora=True)
        pooled = self.pooled(E, M)
        return {
            "logits": logits, "target_ids": packed.target_ids,
            "emotion_logits": self.emotion_head(pooled.to(self.emotion_head.proj.weight.dtype)),
            "avd": self.avd_head(pooled.to(self.avd_head.proj.weight.dtype)),
            "speech_tokens": M.sum(1),
        }

    @torch.no_grad()
    def teacher_logits(self, prompt_ids, prompt_lens, tail_ids, tail_lens, label_start):
        """Text-branch logits of the frozen LLM (LoRA off) at the target positions, for the KL losses."""
        packed = self.pack(prompt_ids, prompt_lens, None, tail_ids, tail_lens, label_start)
        return self.target_logits(packed, use_lora=False)

    # ------------------------------------------------------------------ inference API
    def _segment_batch(self, seqs, device):
        lens = torch.tensor([len(s) for s in seqs], dtype=torch.long)
        ids = torch.zeros(len(seqs), max(int(lens.max()), 1), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        return ids.to(device), lens.to(device)

    def build_generation_inputs(self, system_prompt, instructions, speech=None, texts=None):
        """Left-padded inputs for batched generation.

        ``instructions``: one user-turn text per row (may be ""). ``speech=(E, M)`` from
        ``encode_speech`` puts the speech embeddings after the instruction (LoRA on them
        during the prefill). ``speech=None`` is the text-only baseline: the user turn is
        ``instruction + text`` (``texts`` one per row) and LoRA is off.
        Returns ``dict(inputs_embeds, attention_mask, position_ids, lora_mask)``.
        """
        device = self.base_llm.get_input_embeddings().weight.device
        if speech is None and texts is None:
            raise ValueError("give speech=(E, M) or texts for a text-only prompt")
        texts = texts if texts is not None else [""] * len(instructions)
        if len(texts) != len(instructions):
            raise ValueError(f"{len(instructions)} instructions but {len(texts)} texts")
        prompts = [self.layout.prompt_ids(system_prompt, ins) + self.layout.encode_content(txt)
                   for ins, txt in zip(instructions, texts)]
        tails = [list(self.layout.header_ids)] * len(prompts)
        prompt_ids, prompt_lens = self._segment_batch(prompts, device)
        tail_ids, tail_lens = self._segment_batch(tails, device)
        if speech is not None:
            speech = (speech[0].to(device), speech[1].to(device))
        packed = self.pack(prompt_ids, prompt_lens, speech, tail_ids, tail_lens, left_pad=True)
        return {"inputs_embeds": packed.inputs_embeds, "attention_mask": packed.attention_mask.long(),
                "position_ids": packed.position_ids, "lora_mask": packed.lora_mask}

    @torch.no_grad()
    def generate(self, inputs, max_new_tokens=256, **generate_kwargs):
        """Reference decoding with HF ``generate(inputs_embeds=...)``: greedy unless told otherwise.

        The checkpoint's ``generation_config`` is not inherited (``neutral_generation_config``): only
        the greedy settings here and ``generate_kwargs`` apply.

        LoRA is applied to the prompt forward (prefill) only, at the speech positions; every
        incremental step runs the frozen LLM without LoRA matmuls (method.md 1.4). Returns
        the new token ids ``[B, T_new]`` (decode with ``self.tokenizer.batch_decode``).
        """
        lora_mask = inputs.get("lora_mask")
        use = self.plora is not None and lora_mask is not None and bool(lora_mask.any())
        if use:
            self.plora.prefill_only(lora_mask if self.lora_scope == "speech" else ALL_POSITIONS, self.base_llm)
        from rellm.generation.decoding import GREEDY_SETTINGS, neutral_generation_config

        kwargs = {**GREEDY_SETTINGS, "eos_token_id": self.layout.stop_token_ids,
                  "pad_token_id": self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None
                  else self.layout.stop_token_ids[0]}
        kwargs.update(generate_kwargs)
        try:
            with neutral_generation_config(self.base_llm):
                return self.base_llm.generate(inputs_embeds=inputs["inputs_embeds"],
                                              attention_mask=inputs["attention_mask"], max_new_tokens=max_new_tokens,
                                              **kwargs)
        finally:
            if self.plora is not None:
                self.plora.clear_prefill()

    # ------------------------------------------------------------------ saving / loading
    def save_final(self, folder, extra=None):
        """Write ``folder/trainable.safetensors`` (own parameters only) and ``folder/model.json`` (constructor args)."""
        save_final_state(folder, self.own_state_dict(), {"model": self.config, **(extra or {})})

    @classmethod
    def from_pretrained_dir(cls, model_dir, device="cpu", dtype=None):
        """Load a trained model from a stage-4 experiment folder.

        Reads ``model_dir/final/model.json`` (the base-model ids and constructor args recorded
        from the training hyperparams), loads the frozen LLM through ``rellm.pretrained`` in
        ``dtype`` (default: bf16 on capable GPUs, fp32 on CPU), then the trained adapter, LoRA
        and heads from ``model_dir/final/trainable.safetensors``. The model is returned in eval mode;
        its ``.prompts`` holds the system prompts and instructions used in training.
        """
        state, meta = load_final_state(model_dir)
        config = dict(meta["model"])
        config["llm_dtype"] = str(resolve_dtype(dtype, device)).replace("torch.", "")
        model = cls(llm=config.pop("llm"), **config)
        model.load_own_state_dict(state)
        model.prompts = meta.get("prompts", {})
        return model.to(device).eval()
