"""Test prerequisites: what a test needs but the suite cannot make itself (a cached model, eSpeak NG, a package).

On a developer's machine a missing prerequisite skips the test with the command that provides it; under CI
(``CI=true``, set by ``.ci/run``) it fails the test instead, so a CI run can never pass with its end-to-end tests
skipped. Tests whose subject is absent by design everywhere (no GPU, the licensed EPITOME data) keep plain skips.
"""
import importlib
import os


def in_ci():
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def missing(reason):
    """Skip (or, under CI, fail) the calling test: ``reason`` says what is missing and how to get it."""
    import pytest

    if in_ci():
        pytest.fail(f"prerequisite missing under CI: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def require_module(name, how=None):
    """The imported module ``name``, or :func:`missing` with how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError as err:
        missing(f"{name} is not importable ({err}); {how or 'make install installs it'}")
