"""The one place that turns the ``device`` and ``dtype`` options of every stage into torch objects."""
import torch

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}


def pick_device(name="auto"):
    """``auto`` -> ``cuda`` when available, else ``cpu``; an explicit CUDA request without a GPU is an error."""
    name = str(name or "auto")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name} but no CUDA GPU is visible; use --device=cpu or --device=auto")
    return device


def pick_dtype(name, device):
    """``auto`` (or None) -> bf16 on a bf16-capable GPU (the paper's LLM precision), else fp32 (bf16 matmuls
    are slow on CPU, and emulated or missing on pre-Ampere GPUs); a name of ``DTYPES`` -> its dtype; a
    ``torch.dtype`` is returned as it is."""
    if isinstance(name, torch.dtype):
        return name
    name = str(name or "auto")
    if name == "auto":
        on_gpu = torch.device(device).type == "cuda" and torch.cuda.is_available()
        return torch.bfloat16 if on_gpu and torch.cuda.is_bf16_supported() else torch.float32
    if name not in DTYPES:
        raise ValueError(f"dtype must be auto or one of {', '.join(sorted(DTYPES))}, got {name!r}")
    return DTYPES[name]
