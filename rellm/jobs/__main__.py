"""``python -m rellm.jobs local|slurm [options] [JOB=1:N] log command...`` (see ``rellm.jobs``)."""
import sys

from rellm.jobs import main

if __name__ == "__main__":
    sys.exit(main())
