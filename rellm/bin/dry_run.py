"""``./run.sh --dry_run true`` helper (rellm.recipes.dry_run): cut the stage-1 manifests to the dry run's size.

    python -m rellm.bin.dry_run subset --data_dir data_dry/<split> --max_per_set '{"train": 16}' --sets "train valid test"

The dry run's settings and swaps reach stages.sh through ``python -m rellm.recipes.stage_args --dry_run true``.
"""
import argparse
import json

from rellm.recipes.dry_run import subset_manifests
from rellm.utils.config import run_main
from rellm.utils.logging import setup_logging


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("subset", help="cut the stage-1 manifests to the dry run's size")
    c.add_argument("--data_dir", required=True)
    c.add_argument("--max_per_set", required=True, help="JSON: {set: count}; 'test' covers every other set")
    c.add_argument("--sets", required=True, help="space-separated set names")
    args = parser.parse_args(argv)
    logger = setup_logging()
    report = subset_manifests(args.data_dir, json.loads(args.max_per_set), args.sets.split())
    for name, counts in report.items():
        logger.info("dry run: %s keeps %d utterances (%d left out, counted in %s/dry_run_subset.json)", name,
                    counts["kept"], counts["dropped_dry_run_subset"], args.data_dir)
    return 0


if __name__ == "__main__":
    run_main(main)
