"""tools/check_install.py reports the installed stack and the optional pieces."""
import subprocess
import sys

import pytest
import torch

pytestmark = pytest.mark.slow  # imports the whole stack in a subprocess


def test_reports_versions_accelerator_and_cache(repo_root, tmp_path, tool_env):
    env = dict(tool_env, RELLM_CACHE=str(tmp_path / "empty cache"))
    result = subprocess.run([sys.executable, str(repo_root / "tools" / "check_install.py")], env=env,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"  torch            {torch.__version__.split('+')[0]}" in out
    assert "CUDA: " in out and "bf16" in out
    assert f"pretrained models in {tmp_path / 'empty cache'}:" in out
    assert "whisper-tiny.en          not fetched" in out
    assert "  sbatch " in out and "  ctranslate2 " in out
