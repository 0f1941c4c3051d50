"""rellm: recipes and SpeechBrain-compatible bricks for empathetic speech-LLMs (RE-LLM, BLSP-Emo)."""
from pathlib import Path

__version__ = (Path(__file__).parent / "version.txt").read_text().strip()
