"""Regional ``torch.compile``: each decoder layer of the LLM compiled on its own, not the whole model.

A 7B step runs the same decoder layer 28 times; compiling that one module (its structure repeats, so
dynamo compiles it once and reuses the code for every layer of the same shapes) fuses RMSNorm, SwiGLU,
rotary and the partial-LoRA branch's small ops into a few kernels, at a compile time of one layer
rather than the whole model. Shapes: the first call compiles for its sequence length, a second length
recompiles with a dynamic length dimension (``dynamic=None``, torch's automatic dynamic shapes), so
duration-bucketed batches cost two compiles, not one per bucket.

The partial-LoRA ``masked`` and ``grouped`` impls (``rellm.models.plora``) compile without graph
breaks; ``gather`` needs the number of masked rows, a data-dependent shape that breaks the graph.
"""
import logging

logger = logging.getLogger(__name__)


def decoder_layers(model):
    """The decoder layer modules of an HF causal LM (possibly peft-wrapped, or a ``SpeechLLM``)."""
    if hasattr(model, "base_llm"):
        model = model.base_llm
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    layers = getattr(model.get_decoder(), "layers", None)
    if layers is None:
        raise ValueError(f"{type(model).__name__} has no decoder layer list to compile")
    return list(layers)


def compile_decoder_layers(model, mode=None, dynamic=None, backend="inductor"):
    """Compile every decoder layer of ``model`` in place (``nn.Module.compile``); returns how many.

    ``backend``: torch.compile's (``aot_eager`` traces and partitions the same graphs without generating
    kernels: a quick check of the capture on CPU).

    Layers compiled before are left as they are, so calling this again (the second training step
    of stage 4 builds a new Brain over the same model) adds no compile.
    """
    count = 0
    for layer in decoder_layers(model):
        if getattr(layer, "_compiled_call_impl", None) is None:
            layer.compile(mode=mode, dynamic=dynamic, backend=backend)
            count += 1
    if count:
        logger.info("torch.compile: %d decoder layers compiled (regional, mode=%s, backend=%s)", count,
                    mode or "default", backend)
    return count
