"""rellm: a recipe toolkit for empathetic speech-LLMs (RE-LLM, BLSP-Emo)."""
from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
version = (here / "rellm" / "version.txt").read_text().strip()

setup(
    name="rellm",
    version=version,
    description="Recipes and SpeechBrain-compatible bricks for RE-LLM: empathetic speech-LLMs with emotion nuance",
    long_description=(here / "README.md").read_text(encoding="utf-8") if (here / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    packages=find_packages(include=["rellm", "rellm.*"]),
    package_data={"rellm": ["version.txt", "**/*.yaml", "**/*.txt"]},
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.9",
        "torchaudio>=2.9",
        "speechbrain>=1.1.2",
        "transformers>=5.0,<6",
        "peft>=0.21",
        "hyperpyyaml>=1.2",
        "pyyaml",
        "numpy",
        "soundfile",
        "librosa",
        "sentencepiece",
        "gguf",
        "tqdm",
        "matplotlib",
        "tensorboard",  # stage 4 writes TensorBoard event files of its training curves
        "scipy",
        "scikit-learn",
        "espeakng-loader",
        "silero-vad>=6.2",  # the responder's speech check (rellm.responder_vad); its model ships in the wheel
    ],
    extras_require={
        "test": ["pytest", "ctranslate2", "jiwer", "selenium>=4.20"],
        "dev": ["pytest", "ctranslate2", "jiwer", "selenium>=4.20", "ruff"],
        # the web demo (rellm-demo, docs/demo.md)
        "demo": ["gradio>=6,<7"],
    },
    entry_points={
        "console_scripts": [
            "rellm-respond-audio=rellm.bin.respond_audio:cli",
            "rellm-pretrained=rellm.pretrained.__main__:main",
            "rellm-epitome=rellm.bin.epitome:cli",
            "rellm-demo=rellm.demo.cli:cli",
        ]
    },
)
