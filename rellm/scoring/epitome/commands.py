"""The EPITOME classifiers' commands (``rellm.bin.epitome``): train them once into the shared cache, print their
test metrics, score a JSON-lines file of responses, fetch the annotated data."""
import json
import logging
import sys
from pathlib import Path

from rellm.scoring.epitome.model_cache import cache_root, model_root
from rellm.utils.config import ConfigError, as_list, load_config, split_overrides
from rellm.utils.io import read_jsonl, write_jsonl
from rellm.utils.logging import setup_logging

logger = logging.getLogger("rellm.scoring.epitome.commands")
DEFAULT_CONFIG = Path(__file__).resolve().parent / "epitome.yaml"
COMMANDS = ("train", "metrics", "score", "fetch")


# train --save_config PATH: also write the effective config (file + overrides) to PATH, for stage 6 scoring
COMMAND_OPTIONS = {"score": ("input", "output"), "fetch": ("dest",), "train": ("save_config",)}


def parse_args(argv, usage):
    """``(command, config or None, {command option: value}, {config override: value})``; ``usage`` is printed for
    ``--help`` or an unknown command."""
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        if argv and argv[0] not in ("-h", "--help"):
            print(f"ERROR: unknown command {argv[0]!r}; expected one of {', '.join(COMMANDS)}", file=sys.stderr)
        print(usage, file=sys.stderr)
        sys.exit(0 if argv and argv[0] in ("-h", "--help") else 2)
    command, rest = argv[0], argv[1:]
    config = None
    if rest and not rest[0].startswith("--"):
        config, rest = rest[0], rest[1:]
    overrides = split_overrides(rest)
    options = {k: overrides.pop(k) for k in COMMAND_OPTIONS.get(command, ()) if k in overrides}
    return command, config, options, overrides


def load(config, overrides):
    path = Path(config) if config else DEFAULT_CONFIG
    hp = load_config(path, overrides)
    for key in ("encoder", "mechanisms", "max_len"):
        if key not in hp:
            raise ConfigError(f"{path} lacks '{key}'; is it an EPITOME config (see {DEFAULT_CONFIG})?")
    hp["mechanisms"] = as_list(hp["mechanisms"])
    return hp


def data_dir(hp):
    from rellm.scoring.epitome.data import find_data_dir

    found = find_data_dir(hp.get("data_dir"))
    if found is None:
        raise FileNotFoundError(
            "the EPITOME CSVs are not available: set $RELLM_EPITOME_DIR or data_dir, or run "
            "`python -m rellm.bin.epitome fetch` to download them (sha256-checked)")
    return found


def _checked(function, *args):
    """Run a data check; a checksum mismatch is a user error (one line), not a traceback."""
    try:
        return function(*args)
    except ValueError as err:
        raise ConfigError(str(err)) from err


def cmd_train(hp):
    from rellm.scoring.epitome.data import verify_csvs
    from rellm.scoring.epitome.training import train_all

    folder = data_dir(hp)
    if hp["verify_checksums"]:
        _checked(verify_csvs, folder)
    root = model_root(hp)
    setup_logging(root / "train.log")
    logger.info("EPITOME classifiers for %s from %s -> %s", ", ".join(hp["mechanisms"]), folder, root)
    metrics = train_all(hp, folder, cache_root(hp), overwrite=bool(hp["overwrite"]))
    print(json.dumps(metrics, indent=2))
    return metrics


def cmd_metrics(hp):
    from rellm.scoring.epitome.model_cache import load_metrics

    metrics = load_metrics(model_root(hp), hp["mechanisms"])
    print(json.dumps(metrics, indent=2))
    return metrics


def _field(record, names, k, path):
    for name in names:
        if name in record:
            return record[name] or ""
    raise ConfigError(f"{path}: record {k} has none of the fields {names}")


def cmd_score(hp, input_path, output_path):
    from rellm.scoring.epitome.scorer import EpitomeScorer

    if not input_path:
        raise ConfigError("score needs --input responses.jsonl")
    records = read_jsonl(input_path)
    seekers = [_field(r, ("transcript", "seeker_post"), k, input_path) for k, r in enumerate(records, 1)]
    responses = [_field(r, ("response", "response_post"), k, input_path) for k, r in enumerate(records, 1)]
    scorer = EpitomeScorer(model_root(hp), hp["mechanisms"], num_threads=hp["num_threads"],
                           batch_size=hp["eval_batch_size"])
    levels = scorer.score(seekers, responses)
    out = [{**r, **{m: int(levels[m]["level"][k]) for m in levels}} for k, r in enumerate(records)]
    if output_path:
        write_jsonl(output_path, out)
        logger.info("EPITOME levels of %d responses -> %s", len(out), output_path)
    else:
        for rec in out:
            print(json.dumps(rec, ensure_ascii=False))
    return out


def cmd_fetch(hp, dest):
    from rellm.scoring.epitome.data import fetch_csvs, find_data_dir, verify_csvs

    if dest is None:
        existing = find_data_dir(hp.get("data_dir"))
        if existing is not None:
            _checked(verify_csvs, existing)
            print(f"EPITOME CSVs already present and verified in {existing}")
            return existing
        dest = cache_root(hp) / "epitome" / "data"
    folder = _checked(fetch_csvs, dest)
    print(f"EPITOME CSVs downloaded and verified in {folder}")
    return folder


def run_command(command, config, options, overrides):
    """Run ``command`` (train, metrics, score, fetch) with the config ``config`` (None: the package default)."""
    hp = load(config, overrides)
    if options.get("save_config"):
        from rellm.utils.config import resolved_yaml
        from rellm.utils.io import atomic_write_text

        source = Path(config) if config else DEFAULT_CONFIG
        atomic_write_text(options["save_config"], f"# {source} with {' '.join(f'--{k}={v}' for k, v in overrides.items())}\n"
                          + resolved_yaml(source, overrides))
    if command != "train":
        setup_logging()
    if command == "train":
        return cmd_train(hp)
    if command == "metrics":
        return cmd_metrics(hp)
    if command == "score":
        return cmd_score(hp, options.get("input"), options.get("output"))
    return cmd_fetch(hp, options.get("dest"))

