"""The fast mini run (CI's end-to-end check): ./run.sh with the flags of conf/fast.yaml.

    cd egs/mini
    python -m rellm.bin.fast_run conf/fast.yaml                     # stages 1-6 in a few minutes
    python -m rellm.bin.fast_run conf/fast.yaml --stage 4           # more run.sh flags after the file's
    python -m rellm.bin.fast_run conf/fast.yaml --print [flags]    # only print the command

Outputs: data_fast/, dump_fast/, exp_fast/ (RESULTS: exp_fast/RESULTS_fast.md), downloads_fast/.
"""
import shlex
import subprocess
import sys

from rellm.recipes.fast_run import run_sh_args
from rellm.utils.config import ConfigError, run_main


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write(__doc__)
        return 0 if argv else 2
    conf, rest = argv[0], argv[1:]
    only_print = rest[:1] == ["--print"]
    rest = rest[1:] if only_print else rest
    command = ["./run.sh", *run_sh_args(conf), *rest]
    if only_print:
        sys.stdout.write(shlex.join(command) + "\n")
        return 0
    sys.stderr.write("fast run: " + shlex.join(command) + "\n")
    try:
        return subprocess.run(command, check=False).returncode
    except FileNotFoundError as err:
        raise ConfigError("./run.sh not found: run from egs/mini") from err


if __name__ == "__main__":
    sys.exit(run_main(main))
