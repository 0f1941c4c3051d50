"""Read the weight files of a Hugging Face-style checkpoint folder, shard by shard, without running code.

Supported layouts (the first found wins): ``model.safetensors.index.json``, ``model.safetensors``,
``pytorch_model.bin.index.json``, ``pytorch_model.bin``. ``*.bin`` files are pickles: they are read with
``torch.load(weights_only=True)`` only, which refuses anything but tensors and plain containers.
"""
import json
from pathlib import Path

from rellm.pretrained.errors import ConversionError

LAYOUTS = (
    ("model.safetensors.index.json", "model.safetensors"),
    ("pytorch_model.bin.index.json", "pytorch_model.bin"),
)


def weight_files(folder):
    """The weight shard paths of ``folder`` in index order; a clear error when there are none."""
    folder = Path(folder)
    for index_name, single in LAYOUTS:
        index = folder / index_name
        if index.is_file():
            with open(index, encoding="utf-8") as f:
                names = sorted(set(json.load(f)["weight_map"].values()))
            missing = [n for n in names if not (folder / n).is_file()]
            if missing:
                raise ConversionError(f"{folder}: {index_name} lists shards that are missing: {', '.join(missing[:4])}; "
                                      "download the complete snapshot")
            return [folder / n for n in names]
        if (folder / single).is_file():
            return [folder / single]
    raise ConversionError(f"{folder} has no weights (expected model.safetensors[.index.json] or "
                          "pytorch_model.bin[.index.json]); point at the downloaded checkpoint folder")


def load_shard(path):
    """``{name: tensor}`` of one weight file (safetensors, or a pickle read with ``weights_only=True``)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001  (any unpickling failure: report it as a conversion problem)
        raise ConversionError(f"{path}: not a plain tensor checkpoint that torch.load(weights_only=True) accepts "
                              f"({type(err).__name__}: {err})") from None
    if not isinstance(state, dict):
        raise ConversionError(f"{path}: expected a dict of tensors, found {type(state).__name__}")
    return state


def iter_shards(folder):
    """Yield ``(path, {name: tensor})`` for every weight file of ``folder``."""
    for path in weight_files(folder):
        yield path, load_shard(path)


def load_all(folder):
    """Every tensor of ``folder`` in one dict (fine for small models and for tests)."""
    state = {}
    for _, shard in iter_shards(folder):
        state.update(shard)
    return state
