"""Fault injection for the fault suite (test/faults): ``RELLM_FAULT`` makes a process SIGKILL itself.

``RELLM_FAULT=<point>[@<n>]`` kills the process (SIGKILL: no cleanup, no ``finally``, like a power cut
or the OOM killer) the ``n``-th time (default 1st) it reaches ``fault_point(<point>)``; several
specs are separated by commas. Unset (always, outside tests), ``fault_point`` only reads the
environment. Points:

    checkpoint_staged/<step dir>  stage 4: a checkpoint is fully written in its staging folder, not yet renamed
    checkpoint_saved/<step dir>   stage 4: a checkpoint was just put in place (step dir: step1_semantic, ...)
    write/<file name>             rellm.utils.io: a file is fully written under its temporary name, not yet renamed
    mark_done/<marker name>       a step's output is written, its done marker not yet (e.g. respond.2of3)
"""
import os
import signal

ENV = "RELLM_FAULT"
_counts = {}


def fault_point(name):
    """SIGKILL this process if ``RELLM_FAULT`` names ``name`` and this is the chosen visit."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    _counts[name] = _counts.get(name, 0) + 1
    for item in spec.split(","):
        point, _, nth = item.strip().partition("@")
        if point == name and _counts[name] == int(nth or 1):
            os.kill(os.getpid(), signal.SIGKILL)
