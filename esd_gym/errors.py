"""Exception types of esd-gym, one per kind of bad input.

Every message is a single line that names the offending field (or ``file:line``) and the bad value, so that the
command-line interface can print it as it is and exit non-zero without a traceback.
"""

from __future__ import annotations


class EsdGymError(Exception):
    """Base class of every error that the command-line interface reports in one line."""


class ConfigError(EsdGymError, ValueError):
    """Invalid configuration: an unknown key, a value out of range or an inconsistent combination."""


class TraceError(EsdGymError, ValueError):
    """Invalid workload trace: a malformed file, an empty trace or an id outside the embedding tables."""


class AssignmentError(EsdGymError, ValueError):
    """Invalid dispatch: a worker index out of range, a sample missing or placed twice, a capacity exceeded."""


class DataError(EsdGymError, RuntimeError):
    """A dataset could not be fetched, verified or found on disk."""


class SolverError(EsdGymError, RuntimeError):
    """An optimisation solver is missing or failed; callers fall back to the heuristic and log it."""
