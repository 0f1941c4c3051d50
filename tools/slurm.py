#!/usr/bin/env python3
"""Slurm job runner: slurm.py [--config conf/slurm.conf] [--gpu N] ... JOB=1:N log.JOB.log command... (see rellm.jobs)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, so rellm imports without the venv

from rellm.jobs import main

if __name__ == "__main__":
    sys.exit(main(backend="slurm"))
