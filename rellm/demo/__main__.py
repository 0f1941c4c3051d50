"""``python -m rellm.demo EXP_OR_EXPORT ...``: the same as ``rellm-demo``."""
from rellm.demo.cli import cli

cli()
