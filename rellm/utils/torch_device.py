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


def auto_precision(name, device):
    """``"bf16"`` or ``"fp32"``: what ``auto`` and ``fast`` mean on ``device`` (a name such as ``cpu``, ``cuda:0``
    or a ``torch.device``). ``auto``: bf16 on a bf16-capable GPU (the paper's LLM precision), else fp32 (bf16
    matmuls are emulated on most CPUs and on pre-Ampere GPUs); ``fast``: as ``auto``, and bf16 on a CPU with
    hardware bf16 too (``cpu_bf16_native``). torch is imported for a CUDA device only: a CPU stage resolves its
    precision before its done check without it."""
    if str(name) not in ("auto", "fast"):
        raise ValueError(f"auto_precision resolves auto or fast, got {name!r}")
    kind = str(getattr(device, "type", device)).split(":")[0]
    if kind == "cuda":
        import torch

        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if str(name) == "fast" and kind == "cpu" and cpu_bf16_native() else "fp32"


def fast_is_bf16(device):
    """What ``fast`` resolves to on ``device``: bf16 on a bf16-capable GPU or a CPU with hardware bf16."""
    return auto_precision("fast", device) == "bf16"


def pick_dtype(name, device):
    """``auto`` (or None) and ``fast`` -> bf16 or fp32 as :func:`auto_precision` says (``fast``: the mini recipe's
    choice, its numbers then depend on the CPU kind); a name of ``DTYPES`` -> its dtype; a ``torch.dtype`` is
    returned as it is."""
    import torch

    if isinstance(name, torch.dtype):
        return name
    name = str(name or "auto")
    if name in ("auto", "fast"):
        return torch.bfloat16 if auto_precision(name, torch.device(device)) == "bf16" else torch.float32
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
