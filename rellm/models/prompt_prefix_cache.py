"""Keys/values of the frozen LLM on the prompt prefix every row of a batch shares, computed once per prompt.

With partial LoRA the system turn + instruction do not depend on any trainable parameter, so
recomputing them every step (forward and backward) is pure waste.
"""
import torch


class PromptPrefixCache:
    """Per-layer (key, value) of the frozen LLM (LoRA off) for the last few distinct prefixes."""

    MAX_PREFIXES = 16

    def __init__(self):
        self._kv = {}

    def __len__(self):
        return len(self._kv)

    @staticmethod
    def usable_length(packed, lora_mask):
        """How many leading positions of ``packed`` can come from the cache (0: none)."""
        if not packed.shared_prefix or isinstance(lora_mask, str):
            return 0
        p = len(packed.shared_prefix)
        if lora_mask is not None and bool(lora_mask[:, :p].any()):
            return 0
        if packed.predict_index is not None and packed.predict_index[1].numel() and \
                int(packed.predict_index[1].min()) < p:
            return 0  # a target is predicted from inside the prefix: its hidden state is needed
        return p if p < packed.inputs_embeds.shape[1] else 0

    @torch.no_grad()
    def keys_values(self, llm, plora, prefix, device, dtype):
        """Per-layer (key, value) of ``llm`` on the token ids ``prefix`` with LoRA off (``plora`` mask cleared)."""
        key = (prefix, str(device), dtype, torch.is_autocast_enabled(device.type))
        if key not in self._kv:
            from transformers import DynamicCache

            if len(self._kv) >= self.MAX_PREFIXES:
                self._kv.clear()
            ids = torch.tensor([prefix], device=device)
            embeds = llm.get_input_embeddings()(ids)
            if plora is not None:
                plora.set_mask(None)
            cache = DynamicCache(config=llm.config)
            llm.get_decoder()(inputs_embeds=embeds, cache=cache, use_cache=True)
            self._kv[key] = [(layer.keys, layer.values) for layer in cache.layers]
        return self._kv[key]

    def cache_for_batch(self, llm, plora, prefix, batch, device, dtype):
        """A ``DynamicCache`` holding the prefix's keys/values for each of ``batch`` rows."""
        from transformers import DynamicCache

        kv = self.keys_values(llm, plora, prefix, device, dtype)
        return DynamicCache(ddp_cache_data=[(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1)) for k, v in kv],
                            config=llm.config)
