"""esd-gym: an exact simulator and Gymnasium environment for embedding-aware sample dispatch in edge DLRM training."""

from esd_gym.errors import AssignmentError, ConfigError, DataError, EsdGymError, SolverError, TraceError

__version__ = "0.1.0"

__all__ = [
    "AssignmentError",
    "ConfigError",
    "DataError",
    "EsdGymError",
    "SolverError",
    "TraceError",
    "__version__",
]
