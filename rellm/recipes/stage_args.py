"""What each stage of a recipe run gets on top of its config, for egs/TEMPLATE/stages.sh.

    python -m rellm.recipes.stage_args --conf_dir conf --dry_run false --split S --blsp_emo_source released \
        --blsp_emo "$BLSP_EMO" --prepare_args=... --extract_args=... ...

Every ``--*_args`` flag of stages.sh comes with its value (stages.sh's one list of them). The answer is
NUL-terminated ``NAME=VALUE`` records, which stages.sh assigns without running any of it as shell code:

- ``conf/<file>=--key=value ...``: the recipe's own values for that config (``conf/overlay.yaml``,
  :mod:`rellm.recipes.overlay`), passed to every stage that reads the file, before its ``--*_args``;
- with ``--dry_run true`` (:mod:`rellm.recipes.dry_run`): ``<flag>=<value>`` for each flag a dry run sets,
  every ``--*_args`` with the dry run's overrides in front of the user's, ``dry_run_max_per_set=<JSON>``, and
  ``log=<text>`` for each thing stages.sh tells the user.
"""
import sys
from pathlib import Path

from rellm.recipes.dry_run import load_table, settings
from rellm.recipes.overlay import load_overlay
from rellm.utils.config import ConfigError, run_main

OPTIONS = {"conf_dir": "conf", "dry_run": "false", "split": "official", "blsp_emo_source": "released",
           "blsp_emo": ""}


def parse(argv):
    """``(options, {stage flag: value})`` from ``--name=value`` arguments (the form stages.sh writes)."""
    options, flags = dict(OPTIONS), {}
    for arg in argv:
        name, sep, value = arg.partition("=")
        if not (arg.startswith("--") and sep and name[2:].isidentifier()):
            raise ConfigError(f"expected --name=value, got {arg!r}")
        (options if name[2:] in OPTIONS else flags)[name[2:]] = value
    if options["dry_run"] not in ("true", "false"):
        raise ConfigError(f"--dry_run takes true or false, got {options['dry_run']!r}")
    return options, flags


def records(options, flags):
    """The ``(name, value)`` records for stages.sh, in the order it applies them."""
    conf_dir = Path(options["conf_dir"])
    overlay = load_overlay(conf_dir)
    out = [(f"conf/{conf}", " ".join(words)) for conf, words in overlay.words().items()]
    if options["dry_run"] == "true":
        table = load_table()
        unknown = sorted(set(table.get("stage_args") or {}) - set(flags))
        if unknown:  # a swap that no stage would get
            raise ConfigError(f"rellm/recipes/dry_run.yaml has overrides for {', '.join('--' + f for f in unknown)}, "
                              "which stages.sh does not pass")
        values, notes = settings(recipe_dir=conf_dir.parent, split=options["split"],
                                 blsp_emo_source=options["blsp_emo_source"], blsp_emo=options["blsp_emo"],
                                 user_args=flags, table=table, conf_overrides=overlay.overrides)
        out += list(values.items()) + [("log", note) for note in notes]
    return out


def main(argv=None):
    options, flags = parse(sys.argv[1:] if argv is None else argv)
    for name, value in records(options, flags):
        if "\0" in value:
            raise ConfigError(f"{name}: a value cannot hold a NUL character")
        sys.stdout.buffer.write(f"{name}={value}\0".encode())
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
