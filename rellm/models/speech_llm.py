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

Sequences are packed without gaps (``rellm.models.packing``); the keys/values of the prompt prefix
the rows share come from ``rellm.models.prompt_prefix_cache``; the frozen LLM is loaded by
``rellm.models.llm_loading``; ``final/`` is written and read by ``rellm.models.final_state``.
Stage 5 decodes with ``rellm.generation.decoding.GreedyDecoder``.
"""
import logging
from pathlib import Path

import torch
from torch import nn

from rellm.models.adapter import SpeechAdapter
from rellm.models.chat_layout import ChatLayout
from rellm.models.final_state import base_model_path, load_final_state, relative_base_model_folders, save_final_state
from rellm.models.heads import AVDRegressionHead, EmotionClassifierHead, masked_mean
from rellm.models.llm_loading import load_causal_lm
from rellm.models.packing import pack_sequences, segment_batch
from rellm.models.plora import ALL_POSITIONS, PartialLoRA, add_lora
from rellm.models.prompt_prefix_cache import PromptPrefixCache
from rellm.utils.torch_device import pick_dtype

logger = logging.getLogger(__name__)


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
        ``speech`` (partial LoRA, docs/method.md#partial-lora) or ``all`` (plain LoRA at every position).
    adapter_bottleneck_dim : int
        Inner width of the adapter bottleneck (512).
    gradient_checkpointing : bool
        Recompute LLM activations in the backward pass (memory for time).
    cache_prompt_prefix : bool
        Compute the keys/values of the prompt shared by every row (system turn + instruction) once
        and reuse them: with partial LoRA they do not depend on any trainable parameter, so
        recomputing them every step (forward and backward) is pure waste.
    plora_impl : str
        How the partial-LoRA branch runs (``rellm.models.plora.IMPLS``: gather | masked | grouped); the
        same outputs and gradients, different speed (bench/run_gpu_benchmarks.sh decides on a GPU).
    """

    def __init__(self, llm, speech_dim, emotion_dim=0, tokenizer=None, llm_dtype="auto", lora_r=16, lora_alpha=16,
                 lora_dropout=0.05, lora_target_modules=("q_proj", "k_proj", "v_proj", "o_proj"), lora_scope="speech",
                 adapter_bottleneck_dim=512, gradient_checkpointing=False, attn_implementation="sdpa",
                 cache_prompt_prefix=True, plora_impl="gather"):
        super().__init__()
        if lora_scope not in ("speech", "all"):
            raise ValueError(f"lora_scope must be 'speech' or 'all', got {lora_scope!r}")
        if isinstance(llm, (str, Path)):
            self.llm_name = str(llm)
            hint = "cuda" if torch.cuda.is_available() else "cpu"  # stage 4 resolves "auto" with --ngpu first
            model, loaded_tok = load_causal_lm(self.llm_name, dtype=pick_dtype(llm_dtype, hint))
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
        self.prefix_cache = PromptPrefixCache()
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
            # plora_impl, like gradient_checkpointing, changes speed, not the model: not in self.config
            self.plora = PartialLoRA(self.llm, impl=plora_impl)
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
        """Pack ``prompt | speech | tail`` per row without gaps (``rellm.models.packing.pack_sequences``)."""
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        return pack_sequences(self.base_llm.get_input_embeddings(), pad_id, prompt_ids, prompt_lens, speech,
                              tail_ids, tail_lens, label_start, left_pad)

    # ------------------------------------------------------------------ LLM side
    def _lora_mask_for(self, packed, use_lora):
        if not use_lora or self.plora is None:
            return None
        if self.lora_scope == "all":
            return ALL_POSITIONS
        return packed.lora_mask if bool(packed.lora_mask.any()) else None

    def llm_hidden(self, packed, use_lora=True):
        """Last hidden states of the LLM on ``packed`` (LoRA on speech positions only).

        Returns ``(hidden, offset)``: ``hidden [B, L - offset, H]`` covers positions ``offset..L-1``;
        ``offset`` > 0 when the shared prompt prefix came from the key/value cache.
        """
        backbone = self.base_llm.get_decoder()
        lora_mask = self._lora_mask_for(packed, use_lora)
        p = self.prefix_cache.usable_length(packed, lora_mask) if self.cache_prompt_prefix else 0
        embeds, positions = packed.inputs_embeds[:, p:], packed.position_ids[:, p:]
        mask = packed.attention_mask.long() if packed.has_padding else None  # None: SDPA's causal fast path
        kwargs = {}
        if p:
            kwargs = {"cache": self.prefix_cache.cache_for_batch(self.base_llm, self.plora, packed.shared_prefix,
                                                                 embeds.shape[0], embeds.device, embeds.dtype),
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
    def build_generation_inputs(self, system_prompt, instructions, speech=None, texts=None, histories=None):
        """Left-padded inputs for batched generation.

        ``instructions``: one user-turn text per row (may be ""). ``speech=(E, M)`` from
        ``encode_speech`` puts the speech embeddings after the instruction (LoRA on them
        during the prefill). ``speech=None`` is the text-only baseline: the user turn is
        ``instruction + text`` (``texts`` one per row) and LoRA is off. ``histories``: one list of
        earlier ``(user_text, assistant_text)`` turns per row (or None), placed before the current
        user turn (``ChatLayout.history_ids``).
        Returns ``dict(inputs_embeds, attention_mask, position_ids, lora_mask)``.
        """
        device = self.base_llm.get_input_embeddings().weight.device
        if speech is None and texts is None:
            raise ValueError("give speech=(E, M) or texts for a text-only prompt")
        texts = texts if texts is not None else [""] * len(instructions)
        histories = histories if histories is not None else [None] * len(instructions)
        if len(texts) != len(instructions) or len(histories) != len(instructions):
            raise ValueError(f"{len(instructions)} instructions but {len(texts)} texts and {len(histories)} histories")
        prompts = [self.layout.prompt_ids(system_prompt, ins, history=h) + self.layout.encode_content(txt)
                   for ins, txt, h in zip(instructions, texts, histories)]
        tails = [list(self.layout.header_ids)] * len(prompts)
        prompt_ids, prompt_lens = segment_batch(prompts, device)
        tail_ids, tail_lens = segment_batch(tails, device)
        if speech is not None:
            speech = (speech[0].to(device), speech[1].to(device))
        packed = self.pack(prompt_ids, prompt_lens, speech, tail_ids, tail_lens, left_pad=True)
        return {"inputs_embeds": packed.inputs_embeds, "attention_mask": packed.attention_mask.long(),
                "position_ids": packed.position_ids, "lora_mask": packed.lora_mask}

    # ------------------------------------------------------------------ saving / loading
    def save_final(self, folder, extra=None):
        """Write ``folder/trainable.safetensors`` (own parameters only) and ``folder/model.json`` (constructor args).

        Base models given as local folders are also recorded relative to ``folder`` (``base_model_folders``), so
        that a reader finds them from the experiment itself, wherever it runs (``rellm.models.final_state``).
        """
        meta = {"model": self.config, **(extra or {})}
        folders = relative_base_model_folders({"llm": self.llm_name, **meta.get("base_models", {})}, folder)
        if folders:
            meta["base_model_folders"] = folders
        save_final_state(folder, self.own_state_dict(), meta)

    @classmethod
    def from_pretrained_dir(cls, model_dir, device="cpu", dtype=None):
        """Load a trained model from a stage-4 experiment folder.

        Reads ``model_dir/final/model.json`` (the base-model ids and constructor args recorded
        from the training hyperparams), loads the frozen LLM through ``rellm.pretrained`` in
        ``dtype`` (default: bf16 on capable GPUs, fp32 on CPU), then the trained adapter, LoRA
        and heads from ``model_dir/final/trainable.safetensors``. The model is returned in eval mode;
        its ``.prompts`` holds the system prompts and instructions used in training.
        """
        from rellm.utils.experiment_dir import ExperimentDir

        state, meta = load_final_state(model_dir)
        llm = base_model_path(meta, "llm", ExperimentDir(model_dir).final)
        return cls.from_state(state, meta, device=device, dtype=dtype, llm=llm)

    @classmethod
    def from_state(cls, state, meta, device="cpu", dtype=None, llm=None):
        """The model of a ``final/`` (or exported) ``state`` and ``meta``; ``llm``: where to load the frozen LLM
        from (default: ``meta["model"]["llm"]`` as written)."""
        config = dict(meta["model"])
        config["llm_dtype"] = str(pick_dtype(dtype, device)).replace("torch.", "")
        name = config.pop("llm")
        model = cls(llm=str(llm or name), **config)
        model.load_own_state_dict(state)
        model.prompts = meta.get("prompts", {})
        return model.to(device).eval()
