"""The runner's shared command line: options, the JOB range, the log pattern and the command."""
import pytest

from rellm.jobs.spec import UsageError, parse_job_args


def test_array_with_options_and_substitution():
    spec = parse_job_args(["--gpu", "1", "--mem=4G", "--num_threads", "2", "--max_jobs_run", "3",
                           "JOB=1:4", "exp/log/extract.JOB.log", "python3", "-m", "x", "--shard", "JOB",
                           "keys.JOB.scp"])
    assert spec.var == "JOB" and (spec.start, spec.end) == (1, 4)
    assert spec.resources == {"gpu": 1, "mem": "4G", "num_threads": 2}
    assert spec.max_jobs_run == 3
    assert spec.log_of(3) == "exp/log/extract.3.log"
    assert spec.command == ["python3", "-m", "x", "--shard", "JOB", "keys.JOB.scp"]
    assert spec.task_env()["OMP_NUM_THREADS"] == "2"


def test_single_job_keeps_arguments_unchanged():
    spec = parse_job_args(["exp/train.log", "echo", "JOB", "a b"])
    assert spec.var == "" and spec.task_ids == [1]
    assert spec.log_of(1) == "exp/train.log"
    assert spec.command == ["echo", "JOB", "a b"]


def test_other_variable_name_and_offset_range():
    spec = parse_job_args(["TASK=3:5", "log.TASK.txt", "echo", "TASK"])
    assert spec.task_ids == [3, 4, 5] and spec.log_of(4) == "log.4.txt"


def test_dashes_in_option_names_are_underscores():
    assert parse_job_args(["--max-jobs-run", "2", "l.log", "true"]).max_jobs_run == 2


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--bogus", "1", "l.log", "true"], "unknown option --bogus"),
        (["--gpu"], "--gpu needs a value"),
        (["--gpu", "two", "l.log", "true"], "--gpu must be an integer"),
        (["--pick", "some", "l.log", "true"], "--pick must be 'all' or 'failed'"),
        (["JOB=2:1", "l.JOB.log", "true"], "bad range"),
        (["JOB=1:x", "l.JOB.log", "true"], "bad job range"),
        (["JOB=1:3", "same.log", "true"], "must contain JOB"),
        (["l.log"], "missing the log file and the command"),
    ],
)
def test_errors_name_the_problem(argv, message):
    with pytest.raises(UsageError, match=message):
        parse_job_args(argv)


def test_describe_logs_lists_few_and_patterns_many():
    spec = parse_job_args(["JOB=1:8", "d/x.JOB.log", "true"])
    assert spec.describe_logs([1, 2]) == "d/x.1.log d/x.2.log"
    assert spec.describe_logs() == "d/x.{1..8}.log"
