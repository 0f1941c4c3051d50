"""The one place that turns the ``device`` and ``dtype`` options of every stage into torch objects.

torch is imported by the functions, not by this module: a stage that finds its outputs done checks its
options (``DTYPES`` names) and exits without paying for the import.
"""
from pathlib import Path

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


def cpu_bf16_native(cpuinfo="/proc/cpuinfo"):
    """True when this CPU multiplies bf16 matrices in hardware (x86 ``avx512_bf16`` or ``amx_bf16`` in
    /proc/cpuinfo). There bf16 is the faster precision (a 576x1536 matmul 2.3x, SmolLM2-135M's LoRA training
    step 1.6x: bench/train_throughput.py --cpu_bf16); elsewhere it is emulated and slower than fp32. Read
    without importing torch, so a stage can resolve its dtype before its done check; False where the file
    does not exist (macOS, Windows)."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return bool({"avx512_bf16", "amx_bf16"} & set(line.partition(":")[2].split()))
    return False


def fast_is_bf16(device):
    """What ``fast`` resolves to on ``device``: bf16 on a bf16-capable GPU or a CPU with hardware bf16."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_bf16_native()


def pick_dtype(name, device):
    """``auto`` (or None) -> bf16 on a bf16-capable GPU (the paper's LLM precision), else fp32 (bf16 matmuls
    are emulated on most CPUs and on pre-Ampere GPUs); ``fast`` -> as ``auto``, and bf16 on a CPU with
    hardware bf16 too (``cpu_bf16_native``; the mini recipe's choice: its numbers then depend on the CPU
    kind); a name of ``DTYPES`` -> its dtype; a ``torch.dtype`` is returned as it is."""
    import torch

    if isinstance(name, torch.dtype):
        return name
    name = str(name or "auto")
    if name == "auto":
        on_gpu = torch.device(device).type == "cuda" and torch.cuda.is_available()
        return torch.bfloat16 if on_gpu and torch.cuda.is_bf16_supported() else torch.float32
    if name == "fast":
        return torch.bfloat16 if fast_is_bf16(device) else torch.float32
    if name not in DTYPES:
        raise ValueError(f"dtype must be auto, fast or one of {', '.join(sorted(DTYPES))}, got {name!r}")
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
