"""Workloads: the binary trace format, readers of public dataset formats and the synthetic generator.

The functions that the environment needs are exported here. The readers are in :mod:`esd_gym.workload.convert`
(with :mod:`~esd_gym.workload.recbole` and :mod:`~esd_gym.workload.tabular`), and trace statistics in
:mod:`esd_gym.workload.stats`.
"""

from esd_gym.workload.datasets import dataset_trace_path, default_data_dir, fetch_dataset
from esd_gym.workload.synthetic import SyntheticConfig, generate_trace, write_synthetic_trace
from esd_gym.workload.trace import Trace, TraceWriter, load_trace, save_trace

__all__ = [
    "SyntheticConfig",
    "Trace",
    "TraceWriter",
    "dataset_trace_path",
    "default_data_dir",
    "fetch_dataset",
    "generate_trace",
    "load_trace",
    "save_trace",
    "write_synthetic_trace",
]
