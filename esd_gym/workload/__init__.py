"""Workloads: the binary trace format, readers of public dataset formats and the synthetic generator."""

from esd_gym.workload.trace import Trace, load_trace, save_trace

__all__ = ["Trace", "load_trace", "save_trace"]
