"""dtype resolution: ``auto`` and ``fast`` (rellm.utils.torch_device)."""
import pytest
import torch

from rellm.utils import torch_device
from rellm.utils.torch_device import cpu_bf16_native, pick_dtype

ZEN4_FLAGS = "flags\t\t: fpu vme sse sse2 avx2 avx512f avx512bw avx512_bf16 avx512_vnni\n"
SKYLAKE_FLAGS = "flags\t\t: fpu vme sse sse2 avx2 avx512f avx512bw avx512_vnni\n"
SAPPHIRE_RAPIDS_FLAGS = "flags\t\t: fpu sse2 avx2 avx512f amx_bf16 amx_tile amx_int8\n"


@pytest.mark.parametrize("flags, native", [(ZEN4_FLAGS, True), (SAPPHIRE_RAPIDS_FLAGS, True), (SKYLAKE_FLAGS, False),
                                           ("processor\t: 0\n", False)])
def test_cpu_bf16_native_reads_the_cpu_flags(tmp_path, flags, native):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: some CPU\n" + flags)
    assert cpu_bf16_native(cpuinfo) is native


def test_cpu_bf16_native_is_false_without_cpuinfo(tmp_path):
    assert cpu_bf16_native(tmp_path / "absent") is False


@pytest.mark.parametrize("native", [True, False])
def test_fast_is_bf16_on_a_cpu_only_with_hardware_bf16_and_auto_stays_fp32(monkeypatch, native):
    monkeypatch.setattr(torch_device, "cpu_bf16_native", lambda: native)
    assert pick_dtype("fast", "cpu") == (torch.bfloat16 if native else torch.float32)
    assert pick_dtype("auto", "cpu") == torch.float32
    assert pick_dtype("bf16", "cpu") == torch.bfloat16 and pick_dtype(torch.float16, "cpu") == torch.float16


def test_unknown_dtype_names_the_choices():
    with pytest.raises(ValueError, match="auto, fast or one of"):
        pick_dtype("half-ish", "cpu")
