"""The DLRM network (Naumov et al., 2019, "Deep Learning Recommendation Model for Personalization and
Recommendation Systems"; layout as in facebookresearch/dlrm ``dlrm_s_pytorch.py``).

The embedding tables are not parameters of this module: in the distributed mode the rows live at the parameter
servers and in the workers' caches, so a caller pools the rows it holds with :func:`pool_rows` and passes the pooled
vectors to :meth:`DLRM.forward`. The module holds the dense parameters only: the bottom MLP (dense features → a
vector of width d), the pairwise dot-product interaction of that vector and the T pooled embeddings, and the top
MLP that maps the interaction to one logit.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from esd_gym.dlrm.config import ModelConfig
from esd_gym.dlrm.data import BagLayout

__all__ = ["DLRM", "initial_rows", "pool_rows"]


def _mlp(widths: list[int], final_activation: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for index, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(fan_in, fan_out))
        if index < len(widths) - 2 or final_activation:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class DLRM(nn.Module):
    """Bottom MLP, dot interaction and top MLP of a DLRM with ``num_tables`` embedding tables of width ``dim``.

    :param num_dense: dense features per sample; 0 drops the bottom MLP, and only the embeddings interact.
    """

    def __init__(self, num_dense: int, num_tables: int, dim: int, config: ModelConfig) -> None:
        super().__init__()
        self.num_dense, self.num_tables, self.dim = num_dense, num_tables, dim
        self.bottom = _mlp([num_dense, *config.bottom_mlp, dim], final_activation=True) if num_dense else None
        num_vectors = num_tables + (1 if num_dense else 0)
        num_pairs = num_vectors * (num_vectors - 1) // 2
        top_in = num_pairs + (dim if num_dense else 0)
        self.top = _mlp([top_in, *config.top_mlp, 1], final_activation=False)
        rows, columns = torch.tril_indices(num_vectors, num_vectors, offset=-1)
        self.register_buffer("_pair_rows", rows, persistent=False)
        self.register_buffer("_pair_columns", columns, persistent=False)

    def forward(self, dense: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        """Return one logit per sample, [n].

        :param dense: float32 [n, num_dense].
        :param pooled: float32 [n, num_tables, dim], the pooled embedding of every table.
        """
        if self.bottom is not None:
            bottom = self.bottom(dense)
            vectors = torch.cat((bottom.unsqueeze(1), pooled), dim=1)
        else:
            vectors = pooled
        dots = torch.bmm(vectors, vectors.transpose(1, 2))[:, self._pair_rows, self._pair_columns]
        features = torch.cat((bottom, dots), dim=1) if self.bottom is not None else dots
        return self.top(features).squeeze(1)


def pool_rows(rows: torch.Tensor, row_of_entry: np.ndarray, layout: BagLayout, num_samples: int, num_tables: int,
              mode: str) -> torch.Tensor:
    """Pool the rows of every (sample, table) bag, [num_samples, num_tables, d].

    :param rows: float32 [K, d], the rows available to the caller (a worker's copies, or the master rows).
    :param row_of_entry: int64 [M], index into ``rows`` of every entry, in the entry order ``layout`` permutes.
    """
    indices = torch.from_numpy(np.ascontiguousarray(row_of_entry[layout.order]))
    offsets = torch.from_numpy(layout.bag_offsets)
    pooled = functional.embedding_bag(indices, rows, offsets, mode=mode)
    return pooled.view(num_samples, num_tables, rows.shape[1])


def initial_rows(table_sizes: np.ndarray, dim: int, scale: float | None, generator: torch.Generator) -> torch.Tensor:
    """Initial embedding rows, float32 [Σ rows, dim]: uniform in ±scale, or ±sqrt(1 / rows) per table as DLRM does."""
    parts = []
    for rows in table_sizes.tolist():
        bound = scale if scale is not None else float(np.sqrt(1.0 / max(rows, 1)))
        parts.append((torch.rand(rows, dim, generator=generator) * 2.0 - 1.0) * bound)
    return torch.cat(parts) if parts else torch.zeros(0, dim)
