"""Recipe-level helpers that run.sh calls through ``rellm.bin``: the dry-run overrides (``dry_run``)."""
