"""rellm: recipes and SpeechBrain-compatible bricks for empathetic speech-LLMs (RE-LLM, BLSP-Emo).

``from rellm import Responder`` talks to a trained model (``rellm.responder``); it is imported on first use,
so ``import rellm`` stays light.
"""
import importlib
from pathlib import Path

__version__ = (Path(__file__).parent / "version.txt").read_text().strip()

_LAZY = {"Responder": "rellm.responder", "Reply": "rellm.responder"}


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
