"""conf/slurm.conf: generic options -> sbatch options, local override, array syntax (no cluster needed)."""
import pytest

from rellm.jobs.slurm import SlurmConfig, _array_ranges, _job_name
from rellm.jobs.spec import UsageError, parse_job_args


@pytest.fixture
def conf_dir(tmp_path, repo_root):
    (tmp_path / "slurm.conf").write_text((repo_root / "egs/TEMPLATE/conf/slurm.conf").read_text())
    return tmp_path


def test_template_config_maps_generic_options(conf_dir):
    config = SlurmConfig.load(conf_dir / "slurm.conf")
    assert config.command == ["sbatch", "--export=ALL"]
    assert config.sbatch_options({}) == ["--mem=8G", "--time=24:00:00", "--cpus-per-task=1"]
    assert config.sbatch_options({"gpu": 2, "mem": "0", "time": "1:00:00", "num_threads": 4, "partition": "a100"}) == [
        "--gres=gpu:2", "--time=1:00:00", "--cpus-per-task=4", "--partition=a100"]


def test_local_override_replaces_lines(conf_dir):
    (conf_dir / "slurm.local.conf").write_text(
        "command sbatch --account=proj42  # site account\n"
        "default partition=gpu\n"
        "option gpu=* --gpus-per-task=$0 --constraint=a100\n"
    )
    config = SlurmConfig.load(conf_dir / "slurm.conf")
    assert config.command == ["sbatch", "--account=proj42"]
    assert config.sbatch_options({"gpu": 1, "mem": "0"}) == [
        "--gpus-per-task=1", "--constraint=a100", "--time=24:00:00", "--cpus-per-task=1", "--partition=gpu"]
    assert config.sources == [str(conf_dir / "slurm.conf"), str(conf_dir / "slurm.local.conf")]


def test_unmapped_value_and_bad_lines_are_errors(tmp_path):
    (tmp_path / "slurm.conf").write_text("option gpu=0\n")
    config = SlurmConfig.load(tmp_path / "slurm.conf")
    with pytest.raises(UsageError, match="option gpu=\\*"):
        config.sbatch_options({"gpu": 1})
    (tmp_path / "slurm.conf").write_text("option gpus=* --gres=gpu:$0\n")
    with pytest.raises(UsageError, match="slurm.conf:1: unknown option name 'gpus'"):
        SlurmConfig.load(tmp_path / "slurm.conf")
    with pytest.raises(UsageError, match="not found"):
        SlurmConfig.load(tmp_path / "missing.conf")


def test_array_ranges_and_job_name():
    assert _array_ranges([1, 2, 3, 5, 7, 8]) == "1-3,5,7-8"
    assert _array_ranges([4]) == "4"
    assert _job_name(parse_job_args(["JOB=1:2", "dump/log/extract.JOB.log", "true"])) == "extract"
    assert _job_name(parse_job_args(["exp/train.log", "true"])) == "train"
