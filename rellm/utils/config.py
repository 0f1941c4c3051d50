"""Command-line handling shared by every ``python -m rellm.bin.<stage>``.

Convention (SpeechBrain's): ``python -m rellm.bin.X conf.yaml --key=value ...``.
Every tunable is a top-level key of the hyperpyyaml file; ``--key=value`` and
``--key value`` override it. An override for a key that the file does not
have is an error naming the key and the keys that exist (SpeechBrain issue
#27: overrides must never fail silently).
"""
import argparse
import re
import sys
from pathlib import Path

import yaml
from hyperpyyaml import load_hyperpyyaml


class ConfigError(ValueError):
    """A config file or an override is wrong; the message says what to fix."""


def split_overrides(argv):
    """``["--a=1", "--b", "x y"]`` -> ``{"a": "1", "b": "x y"}`` (values kept as YAML text)."""
    out, i = {}, 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--") or arg == "--":
            raise ConfigError(f"expected --key=value, got {arg!r}")
        key = arg[2:]
        if "=" in key:
            key, value = key.split("=", 1)
        elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            value = argv[i + 1]
            i += 1
        else:
            value = "true"  # a bare --flag means true
        out[key.replace("-", "_")] = value
        i += 1
    return out


class TagTolerantLoader(yaml.SafeLoader):
    """Reads a (resolved) hyperpyyaml text without building its objects: ``!new:``/``!ref`` tags become None."""


TagTolerantLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def plain_yaml(text):
    """The plain values of a hyperpyyaml text (``{}`` for an empty one), nothing built."""
    return yaml.load(text, Loader=TagTolerantLoader) or {}


def config_value(path, key, default=None):
    """A top-level plain value of a config file; ``default`` when the file or the key is absent."""
    path = Path(path)
    return plain_yaml(path.read_text(encoding="utf-8")).get(key, default) if path.is_file() else default


def _yaml_value(text):
    """Parse an override as YAML when it is a plain scalar/list, else keep the string."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return "" if value is None and text.strip() == "" else value


def top_level_keys(path):
    """Top-level keys of a hyperpyyaml file, read without resolving tags."""
    keys = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line and not line[0].isspace() and not line.startswith(("#", "-")) and ":" in line:
            keys.append(line.split(":", 1)[0].strip())
    return keys


def load_config(path, overrides=None):
    """Load ``path`` with ``overrides`` (a dict) applied; unknown keys are an error."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    overrides = dict(overrides or {})
    known = set(top_level_keys(path))
    unknown = sorted(k for k in overrides if k not in known)
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join('--' + k for k in unknown)} for {path}; "
            f"the config has: {', '.join(sorted(known))}"
        )
    override_yaml = yaml.safe_dump({k: _yaml_value(str(v)) for k, v in overrides.items()}, allow_unicode=True)
    with open(path, encoding="utf-8") as f:
        try:
            return load_hyperpyyaml(f, override_yaml if overrides else None)
        except ValueError as err:  # a required key (!PLACEHOLDER) left out: one line naming the option to pass
            match = re.match(r"'(\w+)' is a !PLACEHOLDER and must be replaced", str(err))
            if match:
                raise ConfigError(f"--{match.group(1)} is required ({path} leaves it to the command line)") from None
            raise


def resolved_yaml(path, overrides=None):
    """The config text with overrides applied, for saving beside outputs (no objects built)."""
    from hyperpyyaml import resolve_references

    overrides = dict(overrides or {})
    override_yaml = yaml.safe_dump({k: _yaml_value(str(v)) for k, v in overrides.items()}, allow_unicode=True)
    with open(path, encoding="utf-8") as f:
        return resolve_references(f, override_yaml if overrides else None).getvalue()


def parse_stage_args(argv=None, description=None):
    """``(config_path, overrides)`` from ``conf.yaml --key=value ...``; ``-h`` prints the keys."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        parser = argparse.ArgumentParser(description=description)
        parser.add_argument("config", help="hyperpyyaml config; any top-level key can be overridden as --key=value")
        if argv and argv[0] in ("-h", "--help") and len(argv) > 1 and Path(argv[1]).is_file():
            print("options:", " ".join("--" + k for k in top_level_keys(argv[1])))
        parser.parse_args(argv or ["-h"])
    return argv[0], split_overrides(argv[1:])


def as_list(value):
    """``"a b"`` (from the shell) or ``[a, b]`` (from YAML) -> ``["a", "b"]``; null -> ``[]``."""
    if value is None:
        return []
    return value.split() if isinstance(value, str) else [str(v) for v in value]


def main_module(main):
    """The module name of ``main`` (``rellm.bin.respond``, also when run as ``python -m rellm.bin.respond``)."""
    module = main.__module__
    if module == "__main__":
        spec = getattr(sys.modules["__main__"], "__spec__", None)
        module = spec.name if spec is not None else Path(sys.argv[0]).stem
    return module


def run_main(main, argv=None):
    """Run a stage ``main`` and turn expected user errors into one-line messages, exit 1.

    The command (``python -m <module> <argv>``) is recorded for the done markers' ``command.txt`` while ``main``
    runs.
    """
    from rellm.utils.stage import OptionsChangedError, UserError, record_command

    record_command(main_module(main), sys.argv[1:] if argv is None else argv)
    try:
        return main(argv)
    except (ConfigError, OptionsChangedError, FileNotFoundError, UserError) as err:
        print(f"ERROR: {err}", file=sys.stderr)
        sys.exit(1)
    finally:
        record_command(None, None)


__all__ = ["ConfigError", "as_list", "load_config", "parse_stage_args", "resolved_yaml", "run_main", "split_overrides"]
