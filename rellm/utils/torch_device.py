"""The one place that turns the ``device`` and ``dtype`` options of every stage into torch objects.

torch is imported by the functions, not by this module: a stage that finds its outputs done checks its
options (``DTYPES`` names) and exits without paying for the import.
"""
# option name -> torch attribute
DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
          "float16": "float16", "fp16": "float16"}


def pick_device(name="auto"):
    """``auto`` -> ``cuda`` when available, else ``cpu``; an explicit CUDA request without a GPU is an error."""
    import torch

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
    import torch

    if isinstance(name, torch.dtype):
        return name
    name = str(name or "auto")
    if name == "auto":
        on_gpu = torch.device(device).type == "cuda" and torch.cuda.is_available()
        return torch.bfloat16 if on_gpu and torch.cuda.is_bf16_supported() else torch.float32
    if name not in DTYPES:
        raise ValueError(f"dtype must be auto or one of {', '.join(sorted(DTYPES))}, got {name!r}")
    return getattr(torch, DTYPES[name])


def no_grad(fn):
    """``@torch.no_grad()`` for modules that must not import torch when imported (stages 3 and 5 exit early,
    without torch, when their outputs are done)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import torch

        with torch.no_grad():
            return fn(*args, **kwargs)

    return wrapper
