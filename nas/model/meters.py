"""Metric accumulators for dense prediction: update over batches, compute once at the end.

Why accumulators and not per-batch averages: mIoU, RMSE, median angle and F-measures are not
means of per-batch values. Each meter keeps the sufficient statistics (a confusion matrix, sums,
a fine histogram, per-threshold counts) so that the result is the dataset-level figure whatever
the batch size. Predictions are raw head outputs (logits, unnormalised normals); the meters do
the softmax/sigmoid/normalisation themselves, so callers never special-case a task.

Every meter follows one small protocol: ``update(pred, target)``, ``compute() -> dict[str, float]``
and ``reset()``; its :attr:`Meter.METRICS` names each key with a display label and a direction.
Values are fractions in [0, 1] (IoU, F, within-angle shares), metres (depth) or degrees (angles).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "ConfusionMeter",
    "DepthMeter",
    "EdgeMeter",
    "Meter",
    "NormalsMeter",
    "SaliencyMeter",
    "check_shapes",
    "thresholds",
]


def check_shapes(pred: Tensor, target: Tensor, *, channels_must_match: bool) -> None:
    """Fail loudly when a head's output and its target disagree on the spatial size.

    Silent broadcasting would otherwise compute a metric over nonsense.
    """
    if pred.dim() != 4:
        raise ValueError(f"prediction must be [B, C, H, W], got shape {tuple(pred.shape)}")
    spatial = tuple(target.shape[-2:])
    if tuple(pred.shape[-2:]) != spatial or pred.shape[0] != target.shape[0]:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in batch or H, W")
    if channels_must_match and (target.dim() != 4 or target.shape[1] != pred.shape[1]):
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in channels")


def thresholds(count: int = 99) -> Tensor:
    """The probability thresholds the F-measures sweep: (1/(count+1), ..., count/(count+1))."""
    return torch.arange(1, count + 1, dtype=torch.float64) / (count + 1)


class Meter:
    """The accumulator protocol every task's metric implements.

    Attributes:
        METRICS: each key of ``compute()`` → (display label with unit, higher is better): what the
            tables, plots and Δm read about a metric, said once beside the code that computes it.
    """

    METRICS: ClassVar[dict[str, tuple[str, bool]]] = {}

    def update(self, pred: Tensor, target: Tensor) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def compute(self) -> dict[str, float]:  # pragma: no cover - interface
        raise NotImplementedError

    def reset(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class ConfusionMeter(Meter):
    """mIoU and pixel accuracy from a confusion matrix (semantic segmentation, human parts).

    Classes that appear neither in the targets nor in the predictions (union 0) are left out of
    the mean, as in mmsegmentation; a class present in the targets but never predicted counts as
    IoU 0. Pixels labelled ``ignore_index`` are not counted at all.

    Args:
        num_classes: classes of the head; None takes it from the first prediction's channels.
        ignore_index: the target label of unlabelled pixels.
    """

    METRICS = {"miou": ("mIoU", True), "pixel_acc": ("pixel accuracy", True)}

    def __init__(self, num_classes: int | None = None, ignore_index: int = 255) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.reset()

    def reset(self) -> None:
        self.matrix: Tensor | None = None

    def update(self, pred: Tensor, target: Tensor) -> None:
        check_shapes(pred, target, channels_must_match=False)
        n = self.num_classes or pred.shape[1]
        if self.matrix is None:
            self.matrix = torch.zeros(n, n, dtype=torch.int64)
        label = pred.argmax(dim=1).flatten().cpu()
        truth = target.flatten().to(torch.int64).cpu()
        keep = truth != self.ignore_index
        if ((truth[keep] < 0) | (truth[keep] >= n)).any():
            raise ValueError(f"target labels must be in [0, {n}) or {self.ignore_index}")
        self.matrix += torch.bincount(truth[keep] * n + label[keep], minlength=n * n).reshape(n, n)

    def compute(self) -> dict[str, float]:
        if self.matrix is None or self.matrix.sum() == 0:
            return {"miou": float("nan"), "pixel_acc": float("nan")}
        m = self.matrix.to(torch.float64)
        tp = m.diag()
        union = m.sum(0) + m.sum(1) - tp
        present = union > 0
        return {"miou": float((tp[present] / union[present]).mean()), "pixel_acc": float(tp.sum() / m.sum())}


class DepthMeter(Meter):
    """RMSE, mean absolute relative error and L1 over valid pixels (target > 0), dataset-wide.

    RMSE pools squared errors over all valid pixels of the dataset (not a mean of per-image RMSEs).
    """

    METRICS = {"rmse": ("RMSE", False), "abs_rel": ("abs. rel. error", False), "l1": ("L1 error", False)}

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.sq = 0.0
        self.abs = 0.0
        self.rel = 0.0

    def update(self, pred: Tensor, target: Tensor) -> None:
        check_shapes(pred, target, channels_must_match=True)
        valid = target > 0
        p, t = pred.detach()[valid].double(), target[valid].double()
        err = p - t
        self.count += int(valid.sum())
        self.sq += float((err * err).sum())
        self.abs += float(err.abs().sum())
        self.rel += float((err.abs() / t).sum())

    def compute(self) -> dict[str, float]:
        if self.count == 0:
            return {"rmse": float("nan"), "abs_rel": float("nan"), "l1": float("nan")}
        return {
            "rmse": math.sqrt(self.sq / self.count),
            "abs_rel": self.rel / self.count,
            "l1": self.abs / self.count,
        }


def normalise(vectors: Tensor, eps: float = 1e-8) -> Tensor:
    """Unit vectors along dim 1; zero vectors stay zero."""
    return vectors / vectors.norm(dim=1, keepdim=True).clamp_min(eps)


def normals_valid(target: Tensor) -> Tensor:
    """Pixels with a ground-truth normal: invalid ones are stored as (near) zero vectors. [B, H, W]"""
    return target.norm(dim=1) > 0.5


class NormalsMeter(Meter):
    """Angular error in degrees between predicted and true normals, on valid pixels.

    The median comes from a 0.01°-wide histogram (exact to that width) so that memory stays
    constant however large the evaluation set.
    """

    METRICS = {
        "mean": ("mean angle error (°)", False),
        "median": ("median angle error (°)", False),
        "within_11_25": ("within 11.25°", True),
        "within_22_5": ("within 22.5°", True),
        "within_30": ("within 30°", True),
    }

    BIN = 0.01
    WITHIN = (11.25, 22.5, 30.0)

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.hist = torch.zeros(int(round(180 / self.BIN)) + 1, dtype=torch.int64)
        self.count = 0
        self.total = 0.0
        self.within = [0] * len(self.WITHIN)

    def update(self, pred: Tensor, target: Tensor) -> None:
        check_shapes(pred, target, channels_must_match=True)
        valid = normals_valid(target)
        cos = (normalise(pred.detach().double()) * normalise(target.double())).sum(dim=1)
        angle = torch.rad2deg(torch.acos(cos[valid].clamp(-1.0, 1.0))).cpu()
        self.count += angle.numel()
        self.total += float(angle.sum())
        for i, limit in enumerate(self.WITHIN):
            self.within[i] += int((angle < limit).sum())
        bins = torch.round(angle / self.BIN).to(torch.int64).clamp(0, len(self.hist) - 1)
        self.hist += torch.bincount(bins, minlength=len(self.hist))

    def compute(self) -> dict[str, float]:
        if self.count == 0:
            out = {"mean": float("nan"), "median": float("nan")}
            out.update({_within_key(t): float("nan") for t in self.WITHIN})
            return out
        cum = torch.cumsum(self.hist, 0)
        lo = int(torch.searchsorted(cum, torch.tensor((self.count - 1) // 2 + 1)))
        hi = int(torch.searchsorted(cum, torch.tensor(self.count // 2 + 1)))
        out = {"mean": self.total / self.count, "median": (lo + hi) / 2 * self.BIN}
        out.update({_within_key(t): w / self.count for t, w in zip(self.WITHIN, self.within)})
        return out


def _within_key(limit: float) -> str:
    return "within_" + f"{limit:g}".replace(".", "_")


class _ThresholdCounts:
    """Per-threshold true-positive / predicted / actual counts, accumulated over a dataset."""

    def __init__(self, count: int) -> None:
        self.levels = thresholds(count)
        self.tp_pred = torch.zeros(count, dtype=torch.float64)  # predicted positives that are right
        self.tp_true = torch.zeros(count, dtype=torch.float64)  # actual positives that are found
        self.n_pred = torch.zeros(count, dtype=torch.float64)
        self.n_true = 0.0

    def precision_recall(self) -> tuple[Tensor, Tensor]:
        precision = torch.where(self.n_pred > 0, self.tp_pred / self.n_pred.clamp_min(1), torch.zeros(()).double())
        recall = self.tp_true / max(self.n_true, 1.0)
        return precision, recall


def f_measure(precision: Tensor, recall: Tensor, beta2: float) -> Tensor:
    """F_β per threshold; 0 where precision and recall are both 0."""
    denom = beta2 * precision + recall
    return torch.where(denom > 0, (1 + beta2) * precision * recall / denom.clamp_min(1e-12), torch.zeros(()).double())


class _FMeasureMeter(Meter):
    """Per-threshold pixel counts pooled over the dataset; the result is the best F_β over thresholds."""

    BETA2: ClassVar[float] = 1.0

    def __init__(self, levels: int = 99) -> None:
        self.levels = levels
        self.reset()

    def reset(self) -> None:
        self.counts = _ThresholdCounts(self.levels)

    def compute(self) -> dict[str, float]:
        (key,) = self.METRICS
        if self.counts.n_true == 0:
            return {key: float("nan")}
        precision, recall = self.counts.precision_recall()
        return {key: float(f_measure(precision, recall, self.BETA2).max())}


class SaliencyMeter(_FMeasureMeter):
    """maxF (β² = 0.3): the best F_β over thresholds of the sigmoid, with dataset-wide pixel counts.

    Targets are binarised at 0.5 (as the distilled PASCAL saliency labels are). Pixel counts are
    pooled over the dataset before precision and recall are formed; some benchmarks average
    per-image precision/recall instead, which weighs small images more.
    """

    METRICS = {"maxf": ("maxF", True)}
    BETA2 = 0.3

    def update(self, pred: Tensor, target: Tensor) -> None:
        check_shapes(pred, target, channels_must_match=True)
        prob = torch.sigmoid(pred.detach().double()).flatten().cpu()
        truth = (target.flatten().cpu() > 0.5) & (target.flatten().cpu() <= 1.0)
        valid = target.flatten().cpu() <= 1.0
        prob, truth = prob[valid], truth[valid]
        c = self.counts
        above = prob[None, :] > c.levels[:, None]  # [T, P]
        tp = (above & truth[None, :]).sum(1).double()
        c.tp_pred += tp
        c.tp_true += tp
        c.n_pred += above.sum(1).double()
        c.n_true += float(truth.sum())


class EdgeMeter(_FMeasureMeter):
    """Optimal-dataset-scale F-measure (odsF) for edges, with a pixel tolerance for matching.

    For every threshold of the sigmoid, a predicted edge pixel counts as correct when a true edge
    lies within ``tolerance`` pixels (Chebyshev distance), and a true edge pixel counts as found
    when a predicted one lies within the same distance; counts are pooled over the dataset and the
    best F₁ over thresholds is reported.

    How this differs from the MATLAB SEISM benchmark used in papers: SEISM thins predictions by
    non-maximum suppression and matches predicted to true edge pixels one-to-one (bipartite
    matching) within 0.0075 × the image diagonal. Here matching is many-to-one by dilation and
    there is no thinning, so thick predictions are not penalised in precision: values are
    comparable between architectures in this project, and somewhat higher than published odsF.

    Args:
        tolerance: match distance in pixels; None uses max(1, round(0.0075 × diagonal)) per batch,
            SEISM's distance.
        levels: number of thresholds swept.
    """

    METRICS = {"odsf": ("odsF", True)}

    def __init__(self, tolerance: int | None = None, levels: int = 99) -> None:
        self.tolerance = tolerance
        super().__init__(levels)

    def update(self, pred: Tensor, target: Tensor) -> None:
        check_shapes(pred, target, channels_must_match=True)
        h, w = target.shape[-2:]
        r = self.tolerance if self.tolerance is not None else max(1, round(0.0075 * math.hypot(h, w)))
        prob = torch.sigmoid(pred.detach().float()).cpu()
        target = target.detach().float().cpu()
        valid = target <= 1.0
        truth = (target > 0.5) & valid
        near_truth = _dilate(truth, r)
        c = self.counts
        c.n_true += float(truth.sum())
        for i, level in enumerate(c.levels.tolist()):
            above = (prob > level) & valid
            c.n_pred[i] += float(above.sum())
            c.tp_pred[i] += float((above & near_truth).sum())
            c.tp_true[i] += float((truth & _dilate(above, r)).sum())


def _dilate(mask: Tensor, radius: int) -> Tensor:
    """Binary dilation of a [B, 1, H, W] mask by a (2r+1)² square."""
    if radius <= 0:
        return mask
    return F.max_pool2d(mask.float(), 2 * radius + 1, stride=1, padding=radius) > 0
