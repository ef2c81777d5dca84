"""esd-gym: an exact simulator and Gymnasium environment for embedding-aware sample dispatch in edge DLRM training.

Importing the package registers the Gymnasium environments ``esd_gym/Dispatch-v0`` (one step per sample) and
``esd_gym/DispatchBatch-v0`` (one step per batch); see :mod:`esd_gym.env`.
"""

from gymnasium.envs.registration import register, registry

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

# The environments import the simulator only when gymnasium.make creates one.
for _env_id, _entry_point in (
    ("esd_gym/Dispatch-v0", "esd_gym.env:DispatchEnv"),
    ("esd_gym/DispatchBatch-v0", "esd_gym.env:DispatchBatchEnv"),
):
    if _env_id not in registry:
        register(id=_env_id, entry_point=_entry_point)
