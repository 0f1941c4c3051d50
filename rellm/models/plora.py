"""Partial LoRA (PLoRA): LoRA through peft, active only at chosen sequence positions (docs/method.md#partial-lora).

``y = W x + m_t * s * B A dropout(x)`` with ``m_t`` = 1 only at speech positions. Each peft
LoRA layer gets a forward of one of these implementations (``PartialLoRA(impl=...)``), all
computing that same formula:

- ``gather``: the branch on the masked rows only (gather, LoRA, ``index_add_`` back): the
  LoRA matmuls and dropout cost ``N_speech`` rows instead of ``B * T``, but every layer
  launches a gather and a scatter, and the row index needs a host sync per mask;
- ``masked``: the branch on every row, the rank-``r`` intermediate multiplied by the mask
  (``B (m * A dropout(x))``): LoRA is ~r/d of a layer's FLOPs, so computing it on all rows
  costs little, and the layer launches no index kernels and never syncs with the host
  (what a compiled or graph-captured step needs);
- ``grouped``: ``masked``, and the projections that read the same input (q/k/v, gate/up)
  share one matmul through their concatenated A matrices. Their LoRA dropout then draws one
  mask for the group instead of one per projection (identical with ``lora_dropout: 0``).

With dropout on, the implementations draw different dropout masks (one per row picked vs
one per row), so they agree exactly in eval mode or with ``lora_dropout: 0`` only.

Consequences shared by all three:

- with an all-zero mask the network computes exactly the frozen base LLM (the KL
  teacher, the text-only baseline): ``masked`` adds an exact zero there;
- with the mask ``None`` LoRA is OFF: the layers run their base linear only, no LoRA
  work at all (decode steps after the prompt, the teacher branch);
- ``prefill_only(mask)`` applies the mask to the next forward only and switches LoRA off
  for the following ones (incremental decoding of text tokens).

The parameters stay peft's (same state-dict names, same init); only the forward of the
wrapped layers changes, and only for vanilla LoRA layers.
"""
import torch
import torch.nn.functional as F
from torch import nn

#: ``set_mask(ALL_POSITIONS)``: LoRA at every position (BLSP's ``lora_scope="global"``).
ALL_POSITIONS = "all"

IMPLS = ("gather", "masked", "grouped")
# The default is what measured fastest. CPU (bench/plora_step.py, 4 SmolLM2-wide layers, 1 thread): gather
# 832 ms, masked 1081, grouped 963 under bf16 autocast; equal within the noise in fp32. On a GPU the step is
# launch-bound, so fewer kernels (masked -10 %, grouped -20 % leaf ops per LoRA layer step) should win
# there: bench/run_gpu_benchmarks.sh times a 7B cached step with each impl (modes cached_<impl> of
# ours-train.jsonl) and that measurement decides whether stage 4 on CUDA should use another impl. A
# different impl also draws LoRA dropout differently, so switching changes trained weights (not their
# expectation): the tests hold every impl to the same outputs and gradients without dropout.
DEFAULT_IMPL = "gather"

# Projections that read the same input tensor in a Llama-style decoder layer (``grouped``).
GROUPS = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))


class _MaskState:
    """The mask for the current forward, shared by every LoRA layer, in the form the impl needs."""

    __slots__ = ("mask", "need_rows", "rows", "weights")

    def __init__(self, need_rows):
        self.need_rows = need_rows
        self.mask, self.rows, self.weights = None, None, {}

    def set(self, mask):
        self.mask, self.rows, self.weights = mask, None, {}
        if self.need_rows and isinstance(mask, torch.Tensor):
            self.rows = mask.reshape(-1).nonzero().squeeze(1)

    def weight(self, dtype):
        """The mask as ``[B, T, 1]`` of ``dtype`` (converted once per forward and dtype)."""
        w = self.weights.get(dtype)
        if w is None:
            w = self.weights[dtype] = self.mask.unsqueeze(-1).to(dtype)
        return w

    def check(self, x):
        if x.shape[:-1] != self.mask.shape:
            raise RuntimeError(
                f"PLoRA mask of shape {tuple(self.mask.shape)} does not match the layer input {tuple(x.shape[:-1])}; "
                "set the mask for every forward (set_mask / prefill_only)"
            )


def _lora_input(layer, adapter, x):
    """``x`` in the LoRA matmuls' dtype: no round trip to the fp32 LoRA weights under autocast
    (the matmuls run in the autocast dtype anyway; casting first would add two copies)."""
    if not torch.is_autocast_enabled(x.device.type):
        return x.to(layer.lora_A[adapter].weight.dtype)
    return x


def _gather_forward(layer, state, adapter):
    """Base output + LoRA on the masked rows only (gather, LoRA, ``index_add_``).

    The scaling rides on the in-place add (``alpha``), and the base output is updated in place
    rather than copied (the base linear's backward does not need its output).
    """
    base = layer.base_layer

    def forward(x, *args, **kwargs):
        result = base(x, *args, **kwargs)
        mask = state.mask
        if mask is None:
            return result
        lora_A, lora_B = layer.lora_A[adapter], layer.lora_B[adapter]
        dropout, scaling = layer.lora_dropout[adapter], layer.scaling[adapter]
        x = _lora_input(layer, adapter, x)
        if isinstance(mask, str):  # ALL_POSITIONS
            return result.add_(lora_B(lora_A(dropout(x))).to(result.dtype), alpha=scaling)
        state.check(x)
        rows = state.rows
        if rows.numel() == 0:
            return result
        picked = x.reshape(-1, x.shape[-1]).index_select(0, rows)
        delta = lora_B(lora_A(dropout(picked)))
        result.view(-1, result.shape[-1]).index_add_(0, rows, delta.to(result.dtype), alpha=scaling)
        return result

    return forward


def _masked_forward(layer, state, adapter, group=None):
    """Base output + ``s * B (m * A dropout(x))`` on every row: no gather, no scatter, no host sync.

    The mask multiplies the rank-``r`` intermediate (the smallest tensor of the branch). With
    ``group`` (a ``_LoRAGroup``), the intermediate comes from the group's shared matmul.
    """
    base = layer.base_layer

    def forward(x, *args, **kwargs):
        result = base(x, *args, **kwargs)
        mask = state.mask
        if mask is None:
            return result
        if group is not None:
            h = group.intermediate(layer, x)
        else:
            h = layer.lora_A[adapter](layer.lora_dropout[adapter](_lora_input(layer, adapter, x)))
            if not isinstance(mask, str):  # ALL_POSITIONS: no mask
                state.check(x)
                h = h * state.weight(h.dtype)
        delta = layer.lora_B[adapter](h)
        return result.add_(delta.to(result.dtype), alpha=layer.scaling[adapter])

    return forward


class _LoRAGroup:
    """LoRA layers fed the same input tensor (q/k/v or gate/up of one decoder layer): the first one
    called computes ``m * [A_1; A_2; ...] dropout(x)`` in one matmul and hands each member its slice.

    Members are matched to the computed input by identity (``x is`` the tensor the slices came
    from), so a member called with another input, or twice, computes afresh rather than reusing.
    """

    def __init__(self, layers, state, adapter):
        self.layers, self.state, self.adapter = list(layers), state, adapter
        self._x, self._slices = None, {}

    def intermediate(self, layer, x):
        if self._x is not x or layer not in self._slices:
            self._compute(x)
        h = self._slices.pop(layer)
        if not self._slices:
            self._x = None  # every member served: drop the references to this forward's tensors
        return h

    def _compute(self, x):
        first = self.layers[0]
        a = self.adapter
        weight = torch.cat([m.lora_A[a].weight for m in self.layers])
        h = F.linear(first.lora_dropout[a](_lora_input(first, a, x)), weight)
        if not isinstance(self.state.mask, str):
            self.state.check(x)
            h = h * self.state.weight(h.dtype)
        self._x = x
        self._slices = dict(zip(self.layers, h.split([m.lora_A[a].out_features for m in self.layers], dim=-1)))


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


def _groups(model, layers, adapter):
    """``[[layer, ...], ...]``: the wrapped projections of ``GROUPS`` under one parent module that share
    dropout probability and input width (the condition for one concatenated A matmul)."""
    wrapped = set(layers)
    groups = []
    for parent in model.modules():
        for names in GROUPS:
            members = [getattr(parent, n, None) for n in names]
            members = [m for m in members if m in wrapped]
            if len(members) < 2:
                continue
            drop = {getattr(m.lora_dropout[adapter], "p", 0.0) for m in members}
            width = {m.lora_A[adapter].in_features for m in members}
            if len(drop) == 1 and len(width) == 1:
                groups.append(members)
    return groups


class PartialLoRA:
    """Position-masked LoRA controller for a peft-wrapped LLM.

    ``set_mask(mask)``: ``BoolTensor[B, T]`` for the following forwards (1 = LoRA on),
    ``ALL_POSITIONS`` for plain LoRA, ``None`` to switch LoRA off entirely.
    ``impl``: one of ``IMPLS`` (module docstring); ``set_impl`` switches it in place.
    """

    def __init__(self, peft_model, adapter_name="default", impl=DEFAULT_IMPL):
        self.model = peft_model
        self.adapter = adapter_name
        self.layers = []
        for layer in lora_layers(peft_model):
            if adapter_name not in layer.lora_A:
                continue
            if adapter_name in getattr(layer, "lora_variant", {}) or layer.use_dora.get(adapter_name, False):
                raise ValueError("partial LoRA supports plain LoRA layers only (no DoRA or other variants)")
            if not isinstance(layer, nn.Linear) and not hasattr(layer, "base_layer"):
                continue
            self.layers.append(layer)
        if not self.layers:
            raise ValueError("the model has no LoRA layers to gate; call add_lora first")
        self._pending_prefill = None
        self._hook = None
        self.set_impl(impl)

    def set_impl(self, impl):
        """Install the forwards of ``impl`` on every LoRA layer; LoRA is off until the next ``set_mask``."""
        if impl not in IMPLS:
            raise ValueError(f"plora_impl must be one of {', '.join(IMPLS)}, got {impl!r}")
        self.impl = impl
        self.state = _MaskState(need_rows=impl == "gather")
        grouped = {}
        if impl == "grouped":
            for members in _groups(self.model, self.layers, self.adapter):
                group = _LoRAGroup(members, self.state, self.adapter)
                grouped.update({m: group for m in members})
        for layer in self.layers:
            if impl == "gather":
                layer.forward = _gather_forward(layer, self.state, self.adapter)
            else:
                layer.forward = _masked_forward(layer, self.state, self.adapter, grouped.get(layer))
        self.set_mask(None)

    def set_mask(self, mask):
        """``BoolTensor[B, T]``: LoRA on the True positions; ``ALL_POSITIONS``; ``None``: LoRA off."""
        self.state.set(mask)

    def prefill_only(self, mask, module):
        """Apply ``mask`` to the next forward of ``module`` only; LoRA is off for all later forwards.

        This is the generation rule of docs/method.md#partial-lora: LoRA on the prompt (prefill),
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
