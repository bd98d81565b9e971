"""Exceptions that carry a user-facing message naming what is wrong and where."""


class MovieLensError(Exception):
    """Base class: a problem the user can fix (bad input, bad config, no network)."""


class DataError(MovieLensError):
    """Input data is missing, corrupt or malformed; the message names the file and line."""


class DownloadError(MovieLensError):
    """A release could not be fetched or failed an integrity check."""


class ConfigError(MovieLensError):
    """A configuration value is invalid; the message names the key."""


class NumericalError(MovieLensError):
    """A solve failed even after regularisation jitter (e.g. tau = 0 with collinear factors)."""


class UsageError(MovieLensError):
    """A request cannot be served as given: unknown or ambiguous movie, off-scale rating."""


class ComputeError(MovieLensError):
    """The configured compute (a Dask scheduler, its workers) is unreachable or failed mid-run."""
