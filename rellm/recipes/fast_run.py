"""The fast mini run: ``egs/mini/conf/fast.yaml`` as ``run.sh`` flags.

The file maps run.sh flags to values; a list value is a ``--*_args`` string written one override per item.
:func:`run_sh_args` turns it into the argument list (CI's test and ``python -m rellm.bin.fast_run`` both use
it, so the fast configuration lives in one place). Later flags win in run.sh, so flags added after these
(``--stage 4``, ``--datadir /tmp/x``) change the run; a ``--*_args`` given again replaces the file's string,
so :func:`run_sh_args` takes extra overrides per variable and appends them to the file's instead.
"""
import shlex
from pathlib import Path

import yaml

from rellm.utils.config import ConfigError


def load_fast_config(path):
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} does not exist; run from egs/mini (conf/fast.yaml)")
    table = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: expected a mapping of run.sh flags to values")
    return table


def _value(value):
    if isinstance(value, list):
        return shlex.join(str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def run_sh_args(path, overrides=None, more_args=None):
    """``["--datadir", "data_fast", ...]``: the flags of ``path`` for run.sh.

    ``overrides``: ``{flag: value}`` replacing the file's value (e.g. the output roots); ``more_args``:
    ``{"*_args" flag: "--k=v ..."}`` appended to the file's overrides for that stage (they win)."""
    table = {k: _value(v) for k, v in load_fast_config(path).items()}
    table.update({k: _value(v) for k, v in (overrides or {}).items()})
    for flag, extra in (more_args or {}).items():
        table[flag] = " ".join(s for s in (table.get(flag, ""), _value(extra)) if s)
    out = []
    for flag, value in table.items():
        out += [f"--{flag}", value]
    return out
