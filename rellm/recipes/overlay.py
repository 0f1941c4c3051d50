"""A recipe's ``conf/overlay.yaml``: what it puts over the template's stage configs (``egs/TEMPLATE/conf``).

A recipe's ``conf/*.yaml`` are links to the template's, so that a fix there reaches every recipe; what one recipe
changes is declared in this one file::

    overrides:                                  # {config file: {key: value}}
      train_rellm.yaml: {avd_source: encoder}
    own:                                        # {config file: [keys]}
      prepare.yaml: [corpus, esd_languages]
      score.yaml: [notes]

``overrides``: stages.sh passes them as ``--key=value`` to every stage that reads the file, before the dry run's
and the user's ``--*_args`` (which win); each value travels as one word, so it holds no spaces. ``own``: the
files the recipe keeps a copy of (the corpus's preparer options, RESULTS.md's notes) and the keys in which the
copy may differ from the template's; :func:`drift` names every other difference, so that a fix made in the
template cannot be silently missing from a copy (test/consistency checks every recipe). A recipe without the
file (``egs/mini``, whose configs are CPU-sized on purpose) keeps its own configs.
"""
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from rellm.utils.config import ConfigError, top_level_keys

FILE = "overlay.yaml"


@dataclass
class Overlay:
    overrides: dict = field(default_factory=dict)  # {config file: {key: value}}
    own: dict = field(default_factory=dict)        # {config file: [keys]}

    def words(self):
        """``{config file: ["--key=value", ...]}``: the overrides as stages.sh passes them."""
        return {conf: [override_word(key, value, f"{FILE}: {conf}") for key, value in values.items()]
                for conf, values in self.overrides.items()}


def override_word(key, value, where=FILE):
    """``--key=value`` with the value as the stage reads it back (YAML); one word, so no spaces."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "null"
    elif isinstance(value, (str, int, float)):
        text = str(value)
    else:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if any(c.isspace() for c in text):
        raise ConfigError(f"{where}: {key}: {value!r} holds spaces, but an override travels as one --key=value word: "
                          "keep that value in the recipe's own copy of the file (list it under own:)")
    return f"--{key}={text}"


def _mapping(value, what):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{what}: expected a mapping, got {type(value).__name__}")
    return value


def load_overlay(conf_dir):
    """The overlay of the recipe whose configs are in ``conf_dir`` (empty when it has no ``overlay.yaml``),
    checked: every file it names is in ``conf_dir`` and every override key is one of that config's keys (that an
    own file is a copy, not a link, is the consistency tests' to check)."""
    conf_dir = Path(conf_dir)
    path = conf_dir / FILE
    if not path.is_file():
        return Overlay()
    table = _mapping(yaml.safe_load(path.read_text(encoding="utf-8")), str(path))
    unknown = sorted(set(table) - {"overrides", "own"})
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {', '.join(unknown)}; it has overrides: and own:")
    overlay = Overlay(overrides={str(k): _mapping(v, f"{path}: overrides: {k}")
                                 for k, v in _mapping(table.get("overrides"), f"{path}: overrides").items()},
                      own={str(k): [str(key) for key in (v or [])]
                           for k, v in _mapping(table.get("own"), f"{path}: own").items()})
    for conf, values in overlay.overrides.items():
        config = conf_dir / conf
        if not config.is_file():
            raise ConfigError(f"{path}: overrides of {conf}, which {conf_dir} does not have")
        bad = sorted(set(values) - set(top_level_keys(config)))
        if bad:
            raise ConfigError(f"{path}: {conf} has no key(s) {', '.join(bad)}")
    for conf in overlay.own:
        if not (conf_dir / conf).is_file():
            raise ConfigError(f"{path}: own: {conf}, which {conf_dir} does not have")
    overlay.words()  # every override can be passed
    return overlay


class _TaggedLoader(yaml.SafeLoader):
    """Reads a hyperpyyaml file as data, a tagged node (``!new:``, ``!ref``, ``!name:``) as ``(tag, value)``: two
    files compare equal only when their objects and references are the same."""


def _tagged(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return ("!" + suffix, value)


_TaggedLoader.add_multi_constructor("!", _tagged)


def config_data(path):
    return yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_TaggedLoader) or {}


def drift(config, template):
    """The top-level keys whose values differ between two config files (comments and layout do not count)."""
    ours, theirs = config_data(config), config_data(template)
    return sorted(k for k in set(ours) | set(theirs) if k not in ours or k not in theirs or ours[k] != theirs[k])
