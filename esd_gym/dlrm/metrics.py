"""Binary-classification metrics of the held-out evaluation, in NumPy: ROC AUC and log loss."""

from __future__ import annotations

import numpy as np

__all__ = ["log_loss", "roc_auc"]


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum (Mann–Whitney U) formula; tied scores share their average rank.

    Returns NaN when ``labels`` holds only one class.
    """
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    num_positive = int(labels.sum())
    num_negative = len(labels) - num_positive
    if num_positive == 0 or num_negative == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    # Average rank (1-based) of every run of equal scores.
    run_starts = np.flatnonzero(np.concatenate(([True], sorted_scores[1:] != sorted_scores[:-1])))
    run_ends = np.concatenate((run_starts[1:], [len(scores)]))
    average_rank = (run_starts + 1 + run_ends) / 2.0
    ranks = np.empty(len(scores))
    ranks[order] = np.repeat(average_rank, run_ends - run_starts)
    rank_sum = ranks[labels].sum()
    return float((rank_sum - num_positive * (num_positive + 1) / 2.0) / (num_positive * num_negative))


def log_loss(labels: np.ndarray, logits: np.ndarray) -> float:
    """Mean binary cross-entropy of ``logits`` (before the sigmoid) against 0/1 ``labels``, in nats."""
    labels = np.asarray(labels, dtype=np.float64)
    logits = np.asarray(logits, dtype=np.float64)
    # log(1 + exp(-|z|)) + max(z, 0) − y·z is the numerically stable form of −y·log σ(z) − (1−y)·log(1−σ(z)).
    losses = np.logaddexp(0.0, -np.abs(logits)) + np.maximum(logits, 0.0) - labels * logits
    return float(losses.mean()) if len(losses) else float("nan")
