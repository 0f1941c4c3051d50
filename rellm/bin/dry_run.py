"""``./run.sh --dry_run true`` helpers (rellm.recipes.dry_run).

    python -m rellm.bin.dry_run settings --split S --blsp_emo_source released --blsp_emo "$BLSP_EMO" \
        --extract_args "..." ...        # run.sh variables of a dry run, quoted for eval
    python -m rellm.bin.dry_run subset --data_dir data_dry/<split> --max_per_set '{"train": 16}' --sets "train valid test"
"""
import argparse
import json
import sys

from rellm.recipes.dry_run import STAGE_ARGS, shell_settings, subset_manifests
from rellm.utils.config import run_main
from rellm.utils.logging import setup_logging


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("settings", help="print the run.sh variables of a dry run")
    s.add_argument("--recipe_dir", default=".")
    s.add_argument("--split", default="official")
    s.add_argument("--blsp_emo_source", default="released")
    s.add_argument("--blsp_emo", default="")
    for var in sorted(set(STAGE_ARGS.values())):
        s.add_argument(f"--{var}", default="")
    c = sub.add_parser("subset", help="cut the stage-1 manifests to the dry run's size")
    c.add_argument("--data_dir", required=True)
    c.add_argument("--max_per_set", required=True, help="JSON: {set: count}; 'test' covers every other set")
    c.add_argument("--sets", required=True, help="space-separated set names")
    args = parser.parse_args(argv)
    if args.command == "settings":
        user_args = {var: getattr(args, var) for var in set(STAGE_ARGS.values())}
        sys.stdout.write(shell_settings(recipe_dir=args.recipe_dir, split=args.split,
                                        blsp_emo_source=args.blsp_emo_source, blsp_emo=args.blsp_emo,
                                        user_args=user_args))
        return 0
    logger = setup_logging()
    report = subset_manifests(args.data_dir, json.loads(args.max_per_set), args.sets.split())
    for name, counts in report.items():
        logger.info("dry run: %s keeps %d utterances (%d left out, counted in %s/dry_run_subset.json)", name,
                    counts["kept"], counts["dropped_dry_run_subset"], args.data_dir)
    return 0


if __name__ == "__main__":
    run_main(main)
