"""A run that asks for GPUs where none is visible stops before stage 1, saying what to do (rellm.recipes.gpu_check)."""
import subprocess
import sys

import pytest

from rellm.recipes.gpu_check import gpu_problem

LOCAL = "utils/run.py"
SLURM = "utils/slurm.py --config conf/slurm.conf"


def test_no_gpu_stops_with_the_advice_of_the_recipe():
    mini = gpu_problem(1, False, 1, 6, LOCAL, "mini", gpus=[])
    assert mini.startswith("--ngpu 1 asks for a GPU, but none is visible") and mini.endswith("run ./run.sh --ngpu 0")
    paper = gpu_problem(2, False, 1, 6, LOCAL, "iemocap", gpus=[])
    assert "run it on a GPU node" in paper and "./run.sh --dry_run true" in paper and "--ngpu 0" not in paper
    assert "\n" not in mini + paper
    # listed by nvidia-smi but unusable by this torch (a CPU-only build)
    assert "this torch cannot use them" in gpu_problem(1, False, 1, 6, LOCAL, "esd", gpus=["0"], torch_cuda=False)
    assert gpu_problem(1, False, 1, 6, LOCAL, "esd", gpus=["0"], torch_cuda=True) is None


@pytest.mark.parametrize(("ngpu", "dry_run", "stage", "stop_stage", "cuda_cmd"), [
    (0, False, 1, 6, LOCAL),   # CPU run
    (1, True, 1, 6, LOCAL),    # a dry run always runs on the CPU
    (1, False, 1, 1, LOCAL),   # data preparation alone
    (1, False, 6, 6, LOCAL),   # scoring alone
    (1, False, 1, 6, SLURM),   # the jobs run on the compute nodes, not where run.sh runs
])
def test_runs_that_need_no_gpu_here_pass(ngpu, dry_run, stage, stop_stage, cuda_cmd):
    assert gpu_problem(ngpu, dry_run, stage, stop_stage, cuda_cmd, "iemocap", gpus=[]) is None
    assert gpu_problem(1, False, "2a", "2a", LOCAL, "mini", gpus=[]) is not None  # stage 2a trains on the GPU too


def test_the_check_without_a_gpu(tool_env):
    env = dict(tool_env, CUDA_VISIBLE_DEVICES="")  # whatever this machine has, no GPU is visible
    command = [sys.executable, "-m", "rellm.bin.check_gpu", "--ngpu", "1", "--dry_run", "false", "--stage", "1",
               "--stop_stage", "6", "--corpus", "msp_podcast", "--cuda_cmd", LOCAL]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("ERROR: --ngpu 1 asks for a GPU, but none is visible on this machine "
                                    "(CUDA_VISIBLE_DEVICES='')") and result.stderr.count("\n") == 1
    command[command.index("--ngpu") + 1] = "0"
    assert subprocess.run(command, env=env, capture_output=True, timeout=60, check=False).returncode == 0


@pytest.mark.parametrize(("recipe", "args", "advice"), [
    ("mini", ["--ngpu", "1"], "run ./run.sh --ngpu 0"),
    ("iemocap", [], "./run.sh --dry_run true"),  # the paper recipes ask for a GPU by default
])
def test_a_recipe_stops_before_stage_1(repo_root, tmp_path, tool_env, recipe, args, advice):
    env = {k: v for k, v in tool_env.items() if k not in ("IEMOCAP", "ESD", "MSP_PODCAST")}
    env["CUDA_VISIBLE_DEVICES"] = ""
    outputs = ["--datadir", str(tmp_path / "data"), "--dumpdir", str(tmp_path / "dump"), "--expdir",
               str(tmp_path / "exp")]
    result = subprocess.run(["./run.sh", "--python", sys.executable, *args, *outputs], cwd=repo_root / "egs" / recipe,
                            env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "asks for a GPU, but none is visible" in result.stderr and advice in result.stderr
    assert "Stage 1" not in result.stdout and not (tmp_path / "data").exists()


def test_stage_4_says_to_use_a_gpu_node_not_the_cpu_for_a_large_model():
    import torch

    from rellm.bin.train import run_options
    from rellm.utils.config import ConfigError

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible here")
    with pytest.raises(ConfigError, match=r"^--ngpu 1 but no CUDA device is visible to stage 4: run it on a GPU node"):
        run_options({"ngpu": 1, "precision": "auto"})
