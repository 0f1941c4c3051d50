"""Stage 1: data preparation.

    python -m rellm.bin.prepare conf/prepare.yaml --corpus iemocap --data_folder /data/IEMOCAP_full_release \
        --save_folder data/fold5 --split fold5 [--iemocap_classes=5 ...]

Writes ``<save_folder>/<set>.json`` (SpeechBrain JSON manifests with a ``{data_root}``
placeholder), ``prepare_report.json`` (kept and dropped, by reason), ``data_root.txt``,
the options fingerprint ``.done.prepare`` and ``prepare.log``. Every top-level key
of the config is an option of ``rellm.data.corpora.prepare_<corpus>``.
"""

import inspect
from pathlib import Path

from rellm.data.corpora import PREPARERS, get_preparer
from rellm.data.corpora.common import LOG_FILE
from rellm.utils.config import ConfigError, load_config, parse_stage_args, run_main
from rellm.utils.lock import OutputLock
from rellm.utils.logging import setup_logging


def preparer_arguments(corpus, preparer, hparams):
    """The config keys as keyword arguments of ``preparer``; a key it does not take is an error."""
    params = inspect.signature(preparer).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unused = sorted(k for k in hparams if k not in params and not takes_any)
    if unused:
        raise ConfigError(
            f"option(s) {', '.join(unused)} are not used by the {corpus} preparer {preparer.__name__}; "
            f"it takes: {', '.join(k for k in params if k not in ('data_folder', 'save_folder'))}"
        )
    missing = [
        k for k, p in params.items() if p.default is p.empty and p.kind is p.POSITIONAL_OR_KEYWORD and k not in hparams
    ]
    if missing:
        raise ConfigError(f"the config lacks {', '.join(missing)} for {preparer.__name__}")
    return dict(hparams)


def main(argv=None):
    config_path, overrides = parse_stage_args(argv, description=__doc__)
    hparams = dict(load_config(config_path, overrides))
    corpus = hparams.pop("corpus", None)
    if corpus not in PREPARERS:
        raise ConfigError(f"--corpus must be one of {', '.join(sorted(PREPARERS))}, got {corpus!r}")
    preparer = get_preparer(corpus)
    kwargs = preparer_arguments(corpus, preparer, hparams)
    save_folder = Path(kwargs["save_folder"])
    with OutputLock(save_folder, "prepare", what=f"the data folder {save_folder}"):  # before its log is opened
        logger = setup_logging(save_folder / LOG_FILE)
        logger.info("stage 1 (%s): %s", corpus, " ".join(f"--{k}={v}" for k, v in sorted(kwargs.items())))
        preparer(**kwargs)


if __name__ == "__main__":
    run_main(main)
