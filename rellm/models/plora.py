"""Partial LoRA (PLoRA): LoRA through peft, active only at chosen sequence positions (method.md 1.4).

``y = W x + m_t * s * B A dropout(x)`` with ``m_t`` = 1 only at speech positions. Rather
than multiplying a dense ``[B, T, d]`` LoRA branch by a mostly-zero mask, each peft LoRA
layer gets a forward that computes the branch on the masked rows only (gather, LoRA,
``index_add_`` back): the LoRA matmuls and dropout cost ``N_speech`` rows instead of
``B * T``. Consequences:

- with an all-zero mask the network computes exactly the frozen base LLM (the KL
  teacher, the text-only baseline);
- with the mask ``None`` LoRA is OFF: the layers run their base linear only, no LoRA
  work at all (decode steps after the prompt, the teacher branch);
- ``prefill_only(mask)`` applies the mask to the next forward only and switches LoRA off
  for the following ones (incremental decoding of text tokens).

The parameters stay peft's (same state-dict names, same init); only the forward of the
wrapped layers changes, and only for vanilla LoRA layers.
"""
import contextlib

import torch
from torch import nn

#: ``set_mask(ALL_POSITIONS)``: LoRA at every position (BLSP's ``lora_scope="global"``).
ALL_POSITIONS = "all"


class _MaskState:
    """The mask for the current forward, shared by every LoRA layer, with its flat row index."""

    __slots__ = ("mask", "numel", "rows")

    def __init__(self):
        self.mask, self.rows, self.numel = None, None, 0

    def set(self, mask):
        self.mask = mask
        if isinstance(mask, torch.Tensor):
            self.rows = mask.reshape(-1).nonzero().squeeze(1)
            self.numel = mask.numel()
        else:
            self.rows, self.numel = None, 0


def _partial_lora_forward(layer, state, adapter):
    """A forward for one peft ``lora.Linear``: base output + LoRA on the masked rows only.

    Launch count matters on a GPU (a 7B step runs ~200 of these layers forward and
    backward), so the branch is kept to the kernels it needs: no dtype round trip under
    autocast (the matmuls run in the autocast dtype anyway; casting to the fp32 master
    weights first would add two copies), the LoRA scaling folded into the in-place add
    (``alpha``), and the result updated in place rather than copied (the base linear's
    backward does not need its output).
    """
    base = layer.base_layer

    def forward(x, *args, **kwargs):
        result = base(x, *args, **kwargs)
        mask = state.mask
        if mask is None or adapter not in layer.lora_A:
            return result
        lora_A, lora_B = layer.lora_A[adapter], layer.lora_B[adapter]
        dropout, scaling = layer.lora_dropout[adapter], layer.scaling[adapter]
        if not torch.is_autocast_enabled(x.device.type):
            x = x.to(lora_A.weight.dtype)
        if isinstance(mask, str):  # ALL_POSITIONS
            return result.add_(lora_B(lora_A(dropout(x))).to(result.dtype), alpha=scaling)
        if x.shape[:-1].numel() != state.numel:
            raise RuntimeError(
                f"PLoRA mask of shape {tuple(mask.shape)} does not match the layer input {tuple(x.shape[:-1])}; "
                "set the mask for every forward (set_mask / prefill_only)"
            )
        rows = state.rows
        if rows.numel() == 0:
            return result
        picked = x.reshape(-1, x.shape[-1]).index_select(0, rows)
        delta = lora_B(lora_A(dropout(picked)))
        result.view(-1, result.shape[-1]).index_add_(0, rows, delta.to(result.dtype), alpha=scaling)
        return result

    return forward


def add_lora(model, r=16, alpha=16, dropout=0.05, target_modules=("q_proj", "k_proj", "v_proj", "o_proj")):
    """Freeze ``model`` and wrap it with peft LoRA (A Kaiming-uniform, B zero, bias none).

    Returns the ``PeftModel``. Only the LoRA matrices are trainable afterwards.
    """
    from peft import LoraConfig, get_peft_model

    for p in model.parameters():
        p.requires_grad_(False)
    config = LoraConfig(
        r=int(r), lora_alpha=alpha, lora_dropout=float(dropout), target_modules=list(target_modules), bias="none"
    )
    linear_names = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)})
    hint = (f"no linear layer of {type(model).__name__} matches lora_target_modules={list(target_modules)}; "
            f"its linear layers are named: {', '.join(linear_names)}")
    try:
        # peft keeps LoRA matrices in fp32 even on a bf16 LLM (autocast_adapter_dtype): fp32 master
        # weights for the optimizer; under autocast the LoRA matmuls still run in bf16.
        peft_model = get_peft_model(model, config)
    except ValueError as err:
        raise ValueError(f"{hint} ({err})") from None
    if not any(True for _ in lora_layers(peft_model)):
        raise ValueError(hint)
    return peft_model


def lora_layers(model):
    """The peft LoRA layers of ``model`` (modules with ``lora_A``/``lora_B`` dicts)."""
    from peft.tuners.lora import LoraLayer

    for module in model.modules():
        if isinstance(module, LoraLayer):
            yield module


class PartialLoRA:
    """Position-masked LoRA controller for a peft-wrapped LLM.

    ``set_mask(mask)``: ``BoolTensor[B, T]`` for the following forwards (1 = LoRA on),
    ``ALL_POSITIONS`` for plain LoRA, ``None`` to switch LoRA off entirely.
    """

    def __init__(self, peft_model, adapter_name="default"):
        self.model = peft_model
        self.state = _MaskState()
        self.layers = []
        for layer in lora_layers(peft_model):
            if adapter_name not in layer.lora_A:
                continue
            if adapter_name in getattr(layer, "lora_variant", {}) or layer.use_dora.get(adapter_name, False):
                raise ValueError("partial LoRA supports plain LoRA layers only (no DoRA or other variants)")
            if not isinstance(layer, nn.Linear) and not hasattr(layer, "base_layer"):
                continue
            layer.forward = _partial_lora_forward(layer, self.state, adapter_name)
            self.layers.append(layer)
        if not self.layers:
            raise ValueError("the model has no LoRA layers to gate; call add_lora first")
        self._pending_prefill = None
        self._hook = None
        self.set_mask(None)

    def set_mask(self, mask):
        """``BoolTensor[B, T]``: LoRA on the True positions; ``ALL_POSITIONS``; ``None``: LoRA off."""
        self.state.set(mask)

    @contextlib.contextmanager
    def masked(self, mask):
        """``with plora.masked(mask): ...`` and LoRA is off again afterwards."""
        self.set_mask(mask)
        try:
            yield
        finally:
            self.set_mask(None)

    def prefill_only(self, mask, module):
        """Apply ``mask`` to the next forward of ``module`` only; LoRA is off for all later forwards.

        This is the generation rule of method.md 1.4: LoRA on the prompt (prefill),
        never on the incremental text-token steps. Call ``clear_prefill()`` after generating.
        """
        self._pending_prefill = mask
        if self._hook is None:
            self._hook = module.register_forward_pre_hook(self._prefill_hook)

    def _prefill_hook(self, module, args):
        self.set_mask(self._pending_prefill)
        self._pending_prefill = None

    def clear_prefill(self):
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        self._pending_prefill = None
        self.set_mask(None)


def trainable_lora_state(model):
    """``{name: tensor}`` of the LoRA matrices of a peft model."""
    return {n: p for n, p in model.named_parameters() if "lora_" in n}
