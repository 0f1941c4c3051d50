"""Nested training state (optimizer, RNG, schedules) in one safetensors file: loading it runs no code.

``torch.save`` pickles; a checkpoint folder received from someone else could then run code when a
run resumes from it. ``save_state(obj, path)`` writes the tensors of ``obj`` with safetensors and the
rest of its structure as JSON in the file's metadata (dicts keep their int/str keys, tuples stay
tuples, NumPy arrays come back as arrays); ``load_state(path)`` reads it back.
"""
import json
from pathlib import Path

import numpy as np
import torch

from rellm.utils.stage import UserError

FORMAT_KEY = "rellm_state"
FORMAT_VERSION = "1"


class UnsafeCheckpointError(UserError):
    """A file in an old pickle-based format (never loaded: it could run code)."""


def _encode(value, tensors):
    if isinstance(value, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = value.detach().cpu().contiguous().clone()
        return {"__tensor__": key}
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        items = []
        for k, v in value.items():
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise TypeError(f"save_state: dict key {k!r} is not a str or int")
            items.append([k, _encode(v, tensors)])
        return {"__dict__": items}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, tensors) for v in value]}
    if isinstance(value, list):
        return [_encode(v, tensors) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"save_state: cannot store a {type(value).__name__} (only tensors, arrays, dicts, lists, "
                    "tuples and JSON scalars)")


def _decode(value, tensors):
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tensor__" in value:
        return tensors[value["__tensor__"]]
    if "__ndarray__" in value:
        return np.asarray(value["__ndarray__"], dtype=value["dtype"])
    if "__tuple__" in value:
        return tuple(_decode(v, tensors) for v in value["__tuple__"])
    if "__dict__" in value:
        return {k: _decode(v, tensors) for k, v in value["__dict__"]}
    raise ValueError(f"unknown entry {sorted(value)[:3]} in a rellm state file")


def save_state(obj, path):
    """Write ``obj`` (nested dicts/lists/tuples of tensors, arrays and scalars) to ``path``."""
    from safetensors.torch import save_file

    tensors = {}
    skeleton = _encode(obj, tensors)
    save_file(tensors, str(path), metadata={FORMAT_KEY: json.dumps(skeleton), "format_version": FORMAT_VERSION})


def is_pickle_file(path):
    """True for a ``torch.save`` file (zip archive or legacy pickle), which ``load_state`` refuses."""
    with open(path, "rb") as f:
        head = f.read(4)
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def load_state(path):
    """Read what ``save_state`` wrote. A pickle file is refused with a message saying what to do."""
    from safetensors import safe_open

    path = Path(path)
    if is_pickle_file(path):
        raise UnsafeCheckpointError(
            f"{path} is a pickle (torch.save) file, which rellm no longer loads because loading it could run code; "
            f"delete the checkpoint folder {path.parent} to restart from the previous one or from scratch")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except Exception as err:  # safetensors raises its own error types for a damaged file
        raise UserError(f"{path} is not a readable rellm state file ({err}); delete the checkpoint folder "
                         f"{path.parent} to restart from the previous checkpoint") from err
    if FORMAT_KEY not in meta:
        raise ValueError(f"{path} is a safetensors file without rellm state metadata; it was not written by "
                         "rellm.utils.safe_state.save_state")
    return _decode(json.loads(meta[FORMAT_KEY]), tensors)


def save_state_dict_hook(obj, path):
    """Checkpointer save hook for anything with ``state_dict()`` (optimizer, grad scaler)."""
    save_state(obj.state_dict(), path)


def load_state_dict_hook(obj, path, end_of_epoch=None):
    """Checkpointer load hook matching ``save_state_dict_hook``."""
    del end_of_epoch
    obj.load_state_dict(load_state(path))
