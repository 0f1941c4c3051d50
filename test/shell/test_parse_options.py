"""tools/parse_options.sh, sourced by a small script the way run.sh sources it."""
import subprocess

import pytest

SCRIPT = """#!/usr/bin/env bash
# Demo script: prints its settings.
# Second header line.
set -euo pipefail
stage=1            # first stage to run
stop_stage=6
use_gpu=false      # true or false only
train_args=""      # passed on to training
name="with space"
. {parse_options}
helper=7           # below the source line: not a flag
printf '%s\\n' "stage=${{stage}}" "stop_stage=${{stop_stage}}" "use_gpu=${{use_gpu}}" \
    "train_args=${{train_args}}" "name=${{name}}" "argc=$#"
"""


@pytest.fixture
def script(tmp_path, repo_root):
    path = tmp_path / "demo.sh"
    path.write_text(SCRIPT.format(parse_options=repo_root / "tools" / "parse_options.sh"))
    path.chmod(0o755)
    return path


def run(script, *args):
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=30, check=False)


def settings(result):
    assert result.returncode == 0, result.stderr
    return dict(line.split("=", 1) for line in result.stdout.splitlines())


def test_defaults_and_both_forms(script):
    out = settings(run(script))
    assert out == {"stage": "1", "stop_stage": "6", "use_gpu": "false", "train_args": "", "name": "with space",
                   "argc": "0"}
    out = settings(run(script, "--stage", "3", "--stop-stage=5", "--use_gpu", "true", "--name", "a  b;$x"))
    assert (out["stage"], out["stop_stage"], out["use_gpu"], out["name"]) == ("3", "5", "true", "a  b;$x")
    assert out["argc"] == "7"  # the script's "$@" is left as it was


def test_values_may_start_with_dashes(script):
    assert settings(run(script, "--train_args", "--lr=1e-4 --lora_rank 8"))["train_args"] == "--lr=1e-4 --lora_rank 8"
    assert settings(run(script, "--train_args="))["train_args"] == ""


@pytest.mark.parametrize(
    "args, message",
    [
        (["--stages", "3"], "unknown option --stages"),
        (["--helper", "1"], "unknown option --helper"),
        (["--stage"], "option --stage needs a value"),
        (["--use_gpu", "yes"], "option --use_gpu takes true or false, got 'yes'"),
        (["extra"], "unexpected argument 'extra'"),
    ],
)
def test_errors_name_the_flag(script, args, message):
    result = run(script, *args)
    assert result.returncode != 0
    assert message in result.stderr and "demo.sh --help" in result.stderr
    assert result.stdout == ""  # the script stopped before doing anything


def test_help_lists_flags_defaults_and_comments(script):
    result = run(script, "--help")
    assert result.returncode == 0
    assert "Demo script: prints its settings." in result.stdout
    flags = [line.split()[0] for line in result.stdout.splitlines() if line.startswith("  --")]
    assert flags == ["--stage", "--stop_stage", "--use_gpu", "--train_args", "--name"]
    assert "[1]  first stage to run" in result.stdout
    assert "[with space]" in result.stdout and "[false]  true or false only" in result.stdout


def test_flags_of_a_sourced_file_with_the_help_and_name_of_the_script_run(tmp_path, repo_root):
    """A recipe's run.sh sets its settings and sources stages.sh, which holds the flags and sources parse_options.sh."""
    (tmp_path / "lib.sh").write_text(
        "# lib header: not the help text\nstage=${stage-1}      # first stage\nnj=${nj-4}            # jobs\n"
        f". {repo_root / 'tools' / 'parse_options.sh'}\nprintf '%s\\n' \"stage=${{stage}}\" \"nj=${{nj}}\"\n")
    main = tmp_path / "main.sh"
    main.write_text("#!/usr/bin/env bash\n# Main script: its header is the help.\nset -euo pipefail\nnj=2\n"
                    f'. {tmp_path / "lib.sh"} "$@"\n')
    main.chmod(0o755)
    assert settings(run(main)) == {"stage": "1", "nj": "2"}
    assert settings(run(main, "--stage", "3", "--nj=5")) == {"stage": "3", "nj": "5"}
    result = run(main, "--help")
    assert result.stdout.startswith(f"Usage: {main} [--flag value ...]\nMain script: its header is the help.\n")
    assert "lib header" not in result.stdout and "  --nj                       [2]  jobs" in result.stdout
    result = run(main, "--nope", "1")
    assert result.returncode != 0 and "ERROR: main.sh: unknown option --nope (see main.sh --help)" in result.stderr


def test_a_callers_settings_before_double_dash_and_the_users_command_after(tmp_path, repo_root):
    """As run.sh calls stages.sh: ./stages.sh --nj 2 -- "$0" "$@": the settings, then the command as typed, whose
    flags win; the help and the messages are the caller's, and command_line is what the user typed."""
    lib = tmp_path / "lib.sh"
    lib.write_text("#!/usr/bin/env bash\n# lib header: not the help text\nset -euo pipefail\n"
                   "stage=1      # first stage\nnj=4         # jobs\nname=\"\"\n"
                   f". {repo_root / 'tools' / 'parse_options.sh'}\n"
                   "printf '%s\\n' \"stage=${stage}\" \"nj=${nj}\" \"name=${name}\" \"argc=$#\"\n"
                   "printf 'command=%s\\n' \"${command_line[@]}\"\n")
    lib.chmod(0o755)
    main = tmp_path / "main.sh"
    main.write_text(f'#!/usr/bin/env bash\n# Main script: its header is the help.\nexec {lib} --nj 2 -- "$0" "$@"\n')
    main.chmod(0o755)

    def run_main(*args):
        result = run(main, *args)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        return dict(line.split("=", 1) for line in lines if not line.startswith("command=")), \
            [line.removeprefix("command=") for line in lines if line.startswith("command=")]

    assert run_main() == ({"stage": "1", "nj": "2", "name": "", "argc": "4"}, [str(main)])
    out, command = run_main("--nj=5", "--stage", "3", "--name", "a -- b")
    assert out == {"stage": "3", "nj": "5", "name": "a -- b", "argc": "9"}
    assert command == [str(main), "--nj=5", "--stage", "3", "--name", "a -- b"]
    result = run(main, "--help")
    assert result.stdout.startswith(f"Usage: {main} [--flag value ...]\nMain script: its header is the help.\n")
    assert "  --nj                       [2]  jobs" in result.stdout  # the caller's setting as the default
    result = run(main, "--nope", "1")
    assert result.returncode != 0 and "ERROR: main.sh: unknown option --nope (see main.sh --help)" in result.stderr
    # called without "--", the script's own command line is the user's
    result = run(lib, "--stage", "2")
    assert "stage=2" in result.stdout and f"command={lib}\ncommand=--stage\ncommand=2" in result.stdout
