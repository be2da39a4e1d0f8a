"""Segmentation scores from a confusion matrix (rows = ground truth, columns = prediction)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List

import numpy as np


def confusion(label: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """num_classes x num_classes counts over pixels whose label is a class (others ignored:
    CamVid's void = 11)."""
    if label.shape != pred.shape:
        raise ValueError(f"label {label.shape} and prediction {pred.shape} differ in size")
    valid = label < num_classes
    gt = label[valid].astype(np.int64)
    pr = pred[valid].astype(np.int64)
    if pr.size and (pr.min() < 0 or pr.max() >= num_classes):
        raise ValueError(f"prediction ids outside 0..{num_classes - 1}")
    counts = np.bincount(gt * num_classes + pr, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


@dataclass
class Scores:
    iou: List[float]  # per class; NaN where the class is neither labelled nor predicted
    miou: float  # mean over classes with a defined IoU
    pixel_accuracy: float


def scores(matrix: np.ndarray) -> Scores:
    matrix = matrix.astype(np.float64)
    tp = np.diag(matrix)
    denom = matrix.sum(0) + matrix.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(denom > 0, tp / denom, np.nan)
    total = matrix.sum()
    return Scores(
        iou=[float(v) for v in iou],
        miou=float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
        pixel_accuracy=float(tp.sum() / total) if total else float("nan"),
    )
