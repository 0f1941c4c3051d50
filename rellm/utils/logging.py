"""Logging set-up: console plus a log file in the experiment/output folder."""
import logging
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(log_file=None, level=logging.INFO, tag=None):
    """Log to stderr and, when given, append to ``log_file`` (its folder is created).

    ``tag`` is written in every line (``[tag]``): worker processes that share one log name themselves.
    """
    root = logging.getLogger()
    root.setLevel(level)
    for h in list(root.handlers):
        if getattr(h, "_rellm", False):
            root.removeHandler(h)
    handlers = [logging.StreamHandler(sys.stderr)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    fmt = FORMAT.replace("%(name)s", f"[{tag}] %(name)s") if tag else FORMAT
    for h in handlers:
        h.setFormatter(logging.Formatter(fmt, datefmt="%Y-%m-%d %H:%M:%S"))
        h._rellm = True
        root.addHandler(h)
    return logging.getLogger("rellm")

