"""Errors of the pretrained-model kit; each message says what to do."""


class FetchError(RuntimeError):
    """A model could not be downloaded or converted."""


class DownloadError(FetchError):
    """pip could not get the wheel (no network, no index, proxy): an environment problem, not a bug."""


class ConversionError(ValueError):
    """The downloaded files are not what a converter expects (layout, architecture, missing package)."""
