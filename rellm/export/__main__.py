"""Export a trained model: ``python -m rellm.export EXP_DIR OUT_DIR [options]`` (see ``rellm.export``).

    python -m rellm.export exp/rellm/official/seed1 my_rellm                  # from the recipe folder
    python -m rellm.export exp/rellm/official/seed1 my_rellm --include_base   # LLM and Whisper copied in too
    python -m rellm.export exp/rellm/official/seed1 my_rellm --push_to_hub me/my-rellm
"""
import argparse
import sys

from rellm.export import ExportError, export_model, parse_hub_ids, push_to_hub


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m rellm.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("exp_dir", help="experiment folder exp/<model>/<split>/seed<k> (with final/)")
    p.add_argument("out_dir", help="the folder to write (must not exist, or be empty, unless --overwrite)")
    p.add_argument("--include_base", action="store_true",
                   help="copy the LLM and Whisper into the folder too (sensible for the small mini models)")
    p.add_argument("--results", default=None, help="the recipe's RESULTS file for the model card (default: "
                   "RESULTS.md of the recipe folder, else RESULTS*.md of the exp root, by the recipe layout)")
    p.add_argument("--hub_id", action="append", default=[], metavar="ROLE=ORG/NAME[@REVISION]",
                   help="name a base model given as a local folder by its hub id (ROLE: llm, speech_encoder, "
                   "emotion_encoder); may be repeated")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT_DIR")
    p.add_argument("--push_to_hub", default=None, metavar="REPO",
                   help="then upload the folder to this Hugging Face hub repository (needs a logged-in "
                   "huggingface_hub; not tested offline)")
    p.add_argument("--private", action="store_true", help="create the hub repository as private (--push_to_hub)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    out = export_model(args.exp_dir, args.out_dir, include_base=args.include_base, results=args.results,
                       hub_ids=parse_hub_ids(args.hub_id), overwrite=args.overwrite)
    print(f"exported {args.exp_dir} -> {out} (load it with rellm.Responder.from_pretrained({str(out)!r}))")
    if args.push_to_hub:
        push_to_hub(out, args.push_to_hub, private=args.private)
        print(f"uploaded {out} to the hub repository {args.push_to_hub}")
    return out


def cli(argv=None):
    try:
        main(argv)
    except ExportError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    cli()
