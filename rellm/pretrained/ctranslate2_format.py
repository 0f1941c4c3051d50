"""Reader for CTranslate2 ``model.bin`` files (binary format version 6).

We read the file ourselves (numpy + struct) so that converting a CTranslate2
model to Hugging Face needs no ctranslate2 install; ctranslate2 is only the
reference engine in the tests. Layout (little-endian), from
``ctranslate2/specs/model_spec.py`` (``ModelSpec._serialize``)::

    u32 binary_version; str spec_name; u32 spec_revision
    u32 num_variables, then per variable:
        str name; u8 ndim; u32 dim[ndim]; u8 dtype_id; u32 num_bytes; bytes
    u32 num_aliases, then per alias: str alias; str target
    str = u16 length (including the NUL), utf-8 bytes, NUL

See ``docs/pretrained_models.md#ctranslate2-file-format``.
"""
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rellm.pretrained.errors import ConversionError

SUPPORTED_BINARY_VERSIONS = (6,)

# CTranslate2 dtype ids (model_spec._dtype_to_type_id). bfloat16 has no numpy
# dtype: it is read as uint16 and widened to float32 (it is the top half).
_DTYPES = {
    0: np.dtype("<f4"),
    1: np.dtype("i1"),
    2: np.dtype("<i2"),
    3: np.dtype("<i4"),
    4: np.dtype("<f2"),
    5: "bfloat16",
}


class CT2FormatError(ConversionError):
    """The file is not a CTranslate2 model this reader understands."""


@dataclass
class CT2Model:
    """The parsed content of a ``model.bin``: variables by name, plus the alias table."""

    binary_version: int
    spec_name: str
    spec_revision: int
    variables: dict = field(default_factory=dict)  # name -> np.ndarray (0-d for scalars)
    aliases: dict = field(default_factory=dict)  # alias -> target variable name

    def get(self, name):
        """A variable by name, following one alias (``decoder/projection/weight`` -> embeddings)."""
        if name in self.variables:
            return self.variables[name]
        if name in self.aliases:
            return self.variables[self.aliases[name]]
        raise KeyError(f"CTranslate2 model ({self.spec_name}) has no variable {name!r}")

    def scalar(self, name):
        return self.get(name).item()


class _Cursor:
    def __init__(self, data, path):
        self.data = data
        self.pos = 0
        self.path = path

    def take(self, n):
        if self.pos + n > len(self.data):
            raise CT2FormatError(f"{self.path}: truncated at byte {self.pos} (wanted {n} more bytes)")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt):
        size = struct.calcsize(fmt)
        return struct.unpack(fmt, self.take(size))

    def u8(self):
        return self.unpack("<B")[0]

    def u16(self):
        return self.unpack("<H")[0]

    def u32(self):
        return self.unpack("<I")[0]

    def string(self):
        length = self.u16()
        raw = bytes(self.take(length))
        if not raw.endswith(b"\0"):
            raise CT2FormatError(f"{self.path}: string at byte {self.pos - length} is not NUL-terminated")
        return raw[:-1].decode("utf-8")


def _array(raw, dtype_id, shape, name, path):
    dtype = _DTYPES.get(dtype_id)
    if dtype is None:
        raise CT2FormatError(f"{path}: variable {name!r} has unknown dtype id {dtype_id}")
    if dtype == "bfloat16":
        bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        arr = bits.view(np.float32)
    else:
        arr = np.frombuffer(raw, dtype=dtype).copy()
    expected = int(np.prod(shape)) if shape else 1
    if arr.size != expected:
        raise CT2FormatError(f"{path}: variable {name!r} has {arr.size} values for shape {tuple(shape)}")
    return arr.reshape(shape)


def read_ct2_model(path):
    """Parse a CTranslate2 ``model.bin`` into a :class:`CT2Model` (all arrays in memory).

    The whole file must be consumed exactly; trailing bytes mean a format we
    do not understand, and that is an error rather than a silent partial read.
    """
    path = Path(path)
    data = memoryview(path.read_bytes())
    cur = _Cursor(data, path)
    version = cur.u32()
    if version not in SUPPORTED_BINARY_VERSIONS:
        raise CT2FormatError(
            f"{path}: CTranslate2 binary version {version} is not supported "
            f"(this reader handles {SUPPORTED_BINARY_VERSIONS}); re-export the model with ctranslate2 4.x"
        )
    model = CT2Model(binary_version=version, spec_name=cur.string(), spec_revision=cur.u32())
    for _ in range(cur.u32()):
        name = cur.string()
        ndim = cur.u8()
        shape = tuple(cur.u32() for _ in range(ndim))
        dtype_id = cur.u8()
        num_bytes = cur.u32()
        model.variables[name] = _array(cur.take(num_bytes), dtype_id, shape, name, path)
    for _ in range(cur.u32()):
        alias = cur.string()
        model.aliases[alias] = cur.string()
    if cur.pos != len(data):
        raise CT2FormatError(f"{path}: {len(data) - cur.pos} unexpected bytes after the alias table")
    for alias, target in model.aliases.items():
        if target not in model.variables:
            raise CT2FormatError(f"{path}: alias {alias!r} points to missing variable {target!r}")
    return model
