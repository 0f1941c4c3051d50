"""EPITOME empathy classifiers (ER, IP, EX): train once into the shared cache, report, score, fetch data.

    python -m rellm.bin.epitome train   [conf/epitome.yaml] [--key=value ...] [--overwrite=true]
    python -m rellm.bin.epitome metrics [conf/epitome.yaml]      # test-split metrics as JSON
    python -m rellm.bin.epitome score   [conf/epitome.yaml] --input responses.jsonl [--output levels.jsonl]
    python -m rellm.bin.epitome fetch   [conf/epitome.yaml] [--dest FOLDER]

Without a config the package default (``rellm/scoring/epitome/epitome.yaml``) is used.
Trained models live in ``<cache>/epitome/<encoder tag>/<ER|IP|EX>/`` (cache: ``$RELLM_CACHE``
or ``~/.cache/rellm``) and every recipe reuses them. ``score`` reads JSONL records with
``transcript`` (or ``seeker_post``) and ``response`` (or ``response_post``) and writes one
record per line with ``ER``, ``IP``, ``EX`` levels (0..2) added; to stdout without ``--output``.
With a GPU, ``train --device=cuda`` (e.g. with ``--encoder=roberta-base``, the paper's encoder)
trains there; scoring runs on the CPU.
"""
import sys

from rellm.scoring.epitome.commands import parse_args, run_command
from rellm.utils.config import run_main


def main(argv=None):
    return run_command(*parse_args(list(sys.argv[1:] if argv is None else argv), __doc__))


def cli():
    """Console entry point ``rellm-epitome``."""
    run_main(main)


if __name__ == "__main__":
    cli()
