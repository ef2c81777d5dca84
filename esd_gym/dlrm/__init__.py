"""End-to-end mode: a PyTorch DLRM trained under the simulator's caching, staleness and dispatch.

This is the only package of ``esd_gym`` that imports torch. :class:`DistributedTrainer` trains one iteration at a
time on the simulated workers; :func:`esd_gym.dlrm.run.train_dlrm` runs a whole training with held-out evaluation,
TensorBoard and CSV output.
"""

from esd_gym.dlrm.config import DlrmCompareConfig, DlrmRunConfig, ModelConfig, OptimizerConfig
from esd_gym.dlrm.data import DlrmData, check_trace
from esd_gym.dlrm.metrics import log_loss, roc_auc
from esd_gym.dlrm.model import DLRM
from esd_gym.dlrm.training import DistributedTrainer, Evaluation, ReferenceTrainer

__all__ = [
    "DLRM",
    "DistributedTrainer",
    "DlrmCompareConfig",
    "DlrmData",
    "DlrmRunConfig",
    "Evaluation",
    "ModelConfig",
    "OptimizerConfig",
    "ReferenceTrainer",
    "check_trace",
    "log_loss",
    "roc_auc",
]
