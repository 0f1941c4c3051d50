"""Before stage 1 (egs/TEMPLATE/stages.sh): stop a run that asks for GPUs where none is visible.

    python -m rellm.bin.check_gpu --ngpu N --dry_run false --stage 1 --stop_stage 6 --corpus iemocap \
        --cuda_cmd "utils/run.py"

Exits 0 when the run may start, 1 with one line saying what to do otherwise (rellm.recipes.gpu_check).
"""
import argparse
import sys

from rellm.recipes.gpu_check import gpu_problem


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ngpu", type=int, required=True)
    parser.add_argument("--dry_run", choices=("true", "false"), default="false")
    parser.add_argument("--stage", default="1")
    parser.add_argument("--stop_stage", default="6")
    parser.add_argument("--corpus", default="")
    parser.add_argument("--cuda_cmd", default="utils/run.py", help="the recipe's ${cuda_cmd} (cmd.sh)")
    args = parser.parse_args(argv)
    problem = gpu_problem(args.ngpu, args.dry_run == "true", args.stage, args.stop_stage, args.cuda_cmd, args.corpus)
    if problem:
        print(f"ERROR: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
