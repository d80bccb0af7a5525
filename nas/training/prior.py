"""The trivial prior: what a network that ignores its image scores, and who scores worse.

The prior predicts, for every task, per-pixel statistics of the training targets (each task's
:meth:`~nas.model.tasks.Task.prior`: class frequencies, mean depth, mean normal, edge frequency). A
trained network whose primary metric on a task is worse than the prior's has not learned that task
at all: a recipe failure (e.g. a head that cannot express the task's output), not a verdict on
the design. :func:`below_prior` names those tasks; the search records them on the trial
(``below_prior``) and shows them in ``status``, the progress line, the report and the front.
"""

from __future__ import annotations

import weakref
from typing import Mapping

import torch
from torch import Tensor, nn

from nas.model.tasks import get_task
from nas.training.train import TrainData, evaluate

__all__ = ["PriorPredictor", "below_prior", "below_prior_note", "prior_metrics"]


class PriorPredictor(nn.Module):
    """Predicts the training split's per-pixel target statistics for every image (see module doc)."""

    def __init__(self, train: TrainData) -> None:
        super().__init__()
        meta = train.meta
        self.maps = {
            spec.name: get_task(spec.name).prior(train.targets[spec.name], spec.channels, meta.ignore_index)
            for spec in meta.tasks
        }

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return {task: prior.expand(x.shape[0], *prior.shape) for task, prior in self.maps.items()}


#: (train images, val images) → their prior's metrics; the tensors are held so an id is never reused.
#: (id(train images), id(val images)) -> weak references to both and the prior's metrics. Weak, so
#: that the cache never keeps a finished study's scenes alive in a long-lived process (Ray workers,
#: the test suite); an entry whose splits are gone is dropped.
_CACHE: dict[tuple[int, int], tuple[weakref.ref, weakref.ref, dict[str, dict[str, float]]]] = {}


def prior_metrics(train: TrainData, val: TrainData) -> dict[str, dict[str, float]]:
    """The prior's ``{task: {metric: value}}`` on ``val``, computed once per pair of splits."""
    for stale in [key for key, (t, v, _) in _CACHE.items() if t() is None or v() is None]:
        del _CACHE[stale]
    key = (id(train.images), id(val.images))
    cached = _CACHE.get(key)
    if cached is None or cached[0]() is not train.images or cached[1]() is not val.images:
        with torch.no_grad():
            cached = (weakref.ref(train.images), weakref.ref(val.images), evaluate(PriorPredictor(train), val))
        _CACHE[key] = cached
    return cached[2]


def below_prior(metrics: Mapping[str, Mapping[str, float]], prior: Mapping[str, Mapping[str, float]]) -> list[str]:
    """The tasks whose primary metric in ``metrics`` is strictly worse than the prior's, in task order."""
    worse = []
    for task, values in metrics.items():
        spec = get_task(task)
        key = spec.primary_metric
        if task not in prior or key not in values or key not in prior[task]:
            continue
        value, bar = float(values[key]), float(prior[task][key])
        if value < bar if spec.higher_is_better else value > bar:
            worse.append(task)
    return worse


def below_prior_note(attrs: Mapping[str, object]) -> str:
    """``"  ⚠ worse than the trivial prior on depth"`` for a trial's attributes, ``""`` when not flagged."""
    tasks = attrs.get("below_prior") or ()
    return f"  ⚠ worse than the trivial prior on {', '.join(tasks)}" if tasks else ""
