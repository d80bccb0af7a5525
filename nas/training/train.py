"""The proxy trainer: train one architecture for a fidelity's budget, score it, compare it to the teacher.

One trial is ``load_data`` once per study, ``Teacher.load_or_train`` once per study, then
``fit(arch, train, val, fidelity, teacher=teacher, seed=seed)`` per architecture.

Loss (all terms are means, so no term grows with the batch or the image)::

    L = Σ_t w_t · L_t(final_t)                      task losses, weights per dataset (DatasetMeta.loss_weights)
      + λ_ds · Σ_t w_t · L_t(initial_t)              deep supervision at stride 8 (PAD-Net)
      + β · Σ_IB KL                                 every IB layer (arch.ib.beta)
      + γ · Σ_p KD_p                                KD at arch.kd.points (arch.kd.weight)

KD: a feature point ``p`` adds ``MSE(adapter_p(student_p), teacher_p)`` with a 1×1 conv adapter
(trained with the student, not part of the network nor of its cost); the ``output`` point adds, per
task at stride 8, the task's :meth:`~nas.model.tasks.Task.output_kd`: KL(teacher ‖ student) on segmentation logits, BCE against the teacher's
probabilities on binary logit maps (edges, saliency) and L1 on regressions (depth, normals).
The frozen teacher's features of the (unaugmented) training split are computed once and sliced
per batch (:meth:`nas.training.teacher.Teacher.features_for`), so KD adds almost nothing to a step.

Optimiser: AdamW, linear warm-up over the first 5 % of steps, then linear decay to zero (ReActNet's
recipe). Adam's normalised steps move every latent binary weight at a similar pace whatever its
gradient scale (SGD stalls binary nets: sign() gradients are tiny and noisy), and decaying to zero
lets the signs settle at the end instead of flip-flopping (Helwegen et al., 2019). Latent binary
weights get no weight decay (it pulls them toward 0, where every step flips their sign); BN, biases
and the ReAct/IB per-channel parameters none either; other FP weights ``Fidelity.weight_decay``.

Determinism: the global torch generator is seeded before the model is built, minibatches come from
a separate ``torch.Generator`` seeded from the same seed, and nothing reads the wall clock, so a
given (arch, data, fidelity, seed) gives bit-identical metrics on CPU with the same thread count.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nas.data import DatasetMeta, dataset_meta, get_dataset, load_tensors
from nas.errors import ConfigError
from nas.model.arch import Architecture
from nas.model.binary import BinaryConv2d, BinaryLinear
from nas.model.builder import ModelOutput, build
from nas.model.tasks import delta_m, get_task
from nas.training.checkpoint import Checkpointing, capture_state, restore_state
from nas.training.fidelity import Fidelity

if TYPE_CHECKING:
    from nas.training.teacher import Teacher

__all__ = [
    "DEEP_SUPERVISION_WEIGHT",
    "FitResult",
    "TrainData",
    "TrainingError",
    "evaluate",
    "fit",
    "load_data",
    "resolve_device",
    "set_threads",
]

#: λ_ds: weight of the deep-supervision losses on the initial predictions (PAD-Net: 1).
DEEP_SUPERVISION_WEIGHT: float = 1.0
#: Fraction of the steps spent in linear warm-up.
WARMUP_FRACTION: float = 0.05
#: Evaluation batch size (no gradients: larger than any training batch is fine).
EVAL_BATCH: int = 64


class TrainingError(RuntimeError):
    """Training could not go on: a NaN/inf loss, or a model that cannot be trained.

    Attributes:
        step: the optimiser step (0-based) at which it happened (-1: before the first step).
        reason: a short human-readable reason.
    """

    def __init__(self, step: int, reason: str) -> None:
        super().__init__(f"training failed at step {step}: {reason}")
        self.step = step
        self.reason = reason

    def __reduce__(self):  # picklable across processes (Ray workers)
        return (type(self), (self.step, self.reason))


# ---------------------------------------------------------------------------------------------
# Device, threads, data


def resolve_device(name: str | torch.device) -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu`` or ``cuda[:N]``; unavailable CUDA is a ConfigError."""
    if isinstance(name, torch.device):
        name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} asked for, but CUDA is not available here; use --device cpu or auto")
        return torch.device(name)
    raise ConfigError(f"unknown device {name!r}; choose auto, cpu or cuda")


def set_threads(threads: int | None = None) -> int:
    """Use ``threads`` CPU threads for torch (default: every core this process may run on)."""
    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}")
    torch.set_num_threads(int(threads))
    return int(threads)


@dataclass(frozen=True)
class TrainData:
    """One split as tensors on the training device, plus the dataset's declaration."""

    images: Tensor
    targets: dict[str, Tensor]
    meta: DatasetMeta

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def batch(self, index: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        return self.images.index_select(0, index), {t: v.index_select(0, index) for t, v in self.targets.items()}

    def to(self, device: str | torch.device) -> "TrainData":
        return TrainData(self.images.to(device), {t: v.to(device) for t, v in self.targets.items()}, self.meta)


def load_data(
    dataset: str,
    fidelity: Fidelity,
    *,
    root: str | None = None,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
) -> tuple[TrainData, TrainData]:
    """``(train, val)`` at the fidelity's resolution and sizes.

    ``seed`` and ``cache_dir`` choose and cache the scenes of a generated dataset (``synth``);
    datasets read from disk have fixed splits and ignore them.
    """
    meta = dataset_meta(dataset)
    extra: dict[str, Any] = {"seed": seed, "cache_dir": None if cache_dir is None else str(cache_dir)} if meta.generated else {}
    splits = []
    for split, size in (("train", fidelity.train_images), ("val", fidelity.eval_images)):
        data = get_dataset(dataset, split=split, root=root, resolution=fidelity.resolution, size=size, **extra)
        if len(data) < size:
            raise ConfigError(f"dataset {dataset!r} {split} has {len(data)} images, fidelity {fidelity.name!r} needs {size}")
        images, targets = load_tensors(data)
        splits.append(TrainData(images, targets, meta).to(device))
    return splits[0], splits[1]


# ---------------------------------------------------------------------------------------------
# Results


@dataclass
class FitResult:
    """What one training run produced.

    Attributes:
        metrics: ``{task: {metric: value}}`` on the validation split.
        delta_m: Δm (percent) against the reference, None without one.
        loss_curve: the total training loss of every step.
        steps: optimiser steps done.
        seconds: wall time of the whole fit (build, train, evaluate).
        train_seconds: wall time of the optimiser steps alone.
        eval_seconds: wall time of the evaluation.
        loss_terms: each loss term averaged over the last 10 % of steps (``task.<t>``, ``ds.<t>``,
            ``ib``, ``kd.<point>``).
    """

    metrics: dict[str, dict[str, float]]
    delta_m: float | None
    loss_curve: list[float]
    steps: int
    seconds: float
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    loss_terms: dict[str, float] = field(default_factory=dict)

    def primary(self) -> dict[str, float]:
        """``{task: primary metric}``."""
        return {t: m[get_task(t).primary_metric] for t, m in self.metrics.items()}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# Loss


def _downsample(target: Tensor, size: tuple[int, int]) -> Tensor:
    """Nearest-neighbour subsampling of a target to ``size`` (labels and invalid values survive)."""
    h, w = target.shape[-2:]
    sh, sw = h // size[0], w // size[1]
    if sh * size[0] != h or sw * size[1] != w:
        mode_input = target.float() if target.dim() == 4 else target[:, None].float()
        out = F.interpolate(mode_input, size=size, mode="nearest")
        return (out if target.dim() == 4 else out[:, 0]).to(target.dtype)
    return target[..., sh // 2 :: sh, sw // 2 :: sw]


class TrainingLoss(nn.Module):
    """The training loss of one student (owns the KD adapters, which train with the student)."""

    def __init__(
        self,
        arch: Architecture,
        meta: DatasetMeta,
        *,
        student_channels: Mapping[str, int],
        teacher_channels: Mapping[str, int],
    ) -> None:
        super().__init__()
        self.arch = arch
        self.meta = meta
        self.weights = {t: float(meta.loss_weights.get(t, 1.0)) for t in meta.task_names}
        self.tasks = {t: get_task(t) for t in meta.task_names}
        self.adapters = nn.ModuleDict()
        for key, channels in student_channels.items():
            if key.startswith("output."):
                continue
            # ModuleDict keys may not contain '.'
            self.adapters[key.replace(".", "__")] = nn.Conv2d(channels, teacher_channels[key], 1)

    def forward(
        self, out: ModelOutput, targets: Mapping[str, Tensor], teacher_features: Mapping[str, Tensor] | None
    ) -> dict[str, Tensor]:
        terms: dict[str, Tensor] = {}
        ignore = self.meta.ignore_index
        for name, task in self.tasks.items():
            terms[f"task.{name}"] = self.weights[name] * task.loss(out.outputs[name], targets[name], ignore)
        for name, pred in out.initial.items():
            target = _downsample(targets[name], tuple(pred.shape[-2:]))
            terms[f"ds.{name}"] = DEEP_SUPERVISION_WEIGHT * self.weights[name] * self.tasks[name].loss(pred, target, ignore)
        if self.arch.ib.points:
            terms["ib"] = self.arch.ib.beta * out.kl_total
        if teacher_features is not None and self.arch.kd.points:
            kd = self.arch.kd.weight
            for key, feature in out.features.items():
                reference = teacher_features[key]
                if key.startswith("output."):
                    task = key.partition(".")[2]
                    terms[f"kd.{key}"] = kd * self.tasks[task].output_kd(feature, reference)
                else:
                    adapted = self.adapters[key.replace(".", "__")](feature)
                    terms[f"kd.{key}"] = kd * F.mse_loss(adapted, reference)
        terms["total"] = torch.stack(list(terms.values())).sum()
        return terms


# ---------------------------------------------------------------------------------------------
# Optimiser


def _param_groups(modules: list[nn.Module], weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: only the weights of full-precision convolutions and linear layers decay.

    Latent binary weights (their sign is what counts), BN, biases and per-channel vectors do not:
    ReAct's thresholds and RPReLU shifts are [1, C, 1, 1] tensors, so the rule is by layer, not
    by the number of dimensions.
    """
    decay, no_decay, seen = [], [], set()
    for module in modules:
        for sub in module.modules():
            for name, param in sub.named_parameters(recurse=False):
                if not param.requires_grad or id(param) in seen:
                    continue
                seen.add(id(param))
                binary = isinstance(sub, (BinaryConv2d, BinaryLinear))
                dense = isinstance(sub, (nn.Conv2d, nn.Linear)) and name == "weight"
                (decay if dense and not binary else no_decay).append(param)
    groups = [{"params": no_decay, "weight_decay": 0.0}]
    if decay:
        groups.append({"params": decay, "weight_decay": weight_decay})
    return groups


def _lr_factor(step: int, steps: int) -> float:
    """Linear warm-up over WARMUP_FRACTION of the steps, then linear decay to zero."""
    warmup = max(1, int(round(steps * WARMUP_FRACTION)))
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (steps - step) / max(1, steps - warmup))


# ---------------------------------------------------------------------------------------------
# Fit


def _feature_channels(model: nn.Module, images: Tensor, points: tuple[str, ...]) -> dict[str, int]:
    if not points:
        return {}
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model(images[:1], return_aux=True, feature_points=points)
    model.train(was_training)
    return {k: int(v.shape[1]) for k, v in out.features.items()}


def _step(model: nn.Module, loss_fn: TrainingLoss, optimiser: torch.optim.Optimizer, schedule: Any, images: Tensor,
          targets: dict[str, Tensor], teacher_features: dict[str, Tensor] | None, step: int) -> dict[str, Tensor]:
    """One optimiser step; returns the loss terms (detached). A non-finite loss is a TrainingError."""
    terms = loss_fn(model(images, return_aux=True), targets, teacher_features)
    loss = terms["total"]
    value = float(loss.detach())
    if not math.isfinite(value):
        bad = [k for k, v in terms.items() if k != "total" and not math.isfinite(float(v.detach()))]
        raise TrainingError(step, f"loss is {value} (non-finite terms: {', '.join(bad) or 'none'})")
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()
    schedule.step()
    return {k: v.detach() for k, v in terms.items()}


@torch.no_grad()
def evaluate(model: nn.Module, data: TrainData, *, batch_size: int = EVAL_BATCH) -> dict[str, dict[str, float]]:
    """Per-task metrics of ``model`` (put in eval mode) on ``data``."""
    model.eval()
    meta = data.meta
    meters = {t: get_task(t).meter(ignore_index=meta.ignore_index) for t in meta.task_names}
    for start in range(0, len(data), batch_size):
        images = data.images[start : start + batch_size]
        outputs = model(images)
        for task, meter in meters.items():
            meter.update(outputs[task], data.targets[task][start : start + batch_size])
    return {t: {k: float(v) for k, v in m.compute().items()} for t, m in meters.items()}


def fit(
    arch: Architecture,
    train: TrainData,
    val: TrainData,
    fidelity: Fidelity,
    *,
    teacher: Teacher | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    reference: Mapping[str, Mapping[str, float]] | None = None,
    threads: int | None = None,
    log: Callable[[str], None] | None = None,
    rungs: Sequence[int] = (),
    on_rung: Callable[[int, dict[str, dict[str, float]], float | None], None] | None = None,
    checkpoint: Checkpointing | None = None,
) -> tuple[FitResult, nn.Module]:
    """Train ``arch`` on ``train`` for ``fidelity.steps`` steps and score it on ``val``.

    Args:
        arch: the architecture.
        train, val: from :func:`load_data` (on ``device``).
        fidelity: steps, batch size, learning rate, weight decay.
        teacher: the FP teacher; needed for KD (an architecture with KD points trained without a
            teacher simply gets no KD term) and its metrics are the default Δm reference.
        seed: seeds the initialisation, the minibatch order and the IB noise.
        device: where to train (the data must already be there).
        reference: ``{task: {metric: value}}`` for Δm; defaults to ``teacher.metrics``.
        threads: torch CPU threads (None: leave the current setting).
        log: called with a progress line every 10 % of the steps.
        rungs: steps (below ``fidelity.steps``) after which the model is scored on ``val`` and
            ``on_rung(step, metrics, delta_m)`` is called: the hook of multi-objective early
            stopping (:mod:`nas.search.early_stopping`), which stops a trial by raising from ``on_rung``.
            Scoring reads no random numbers, so the final result is the same with or without rungs.
        checkpoint: save the whole training state every ``checkpoint.every`` steps, and resume from
            a saved state of the same run (architecture, fidelity, seed, threads, device) if there is one: the result
            is the same as an uninterrupted run's. Rungs before the resumed step are not scored again.

    Returns:
        ``(FitResult, trained model in eval mode)``.

    Raises:
        TrainingError: the loss became NaN/inf, or the model cannot be trained.
    """
    start = time.perf_counter()
    device = resolve_device(device)
    if threads is not None:
        set_threads(threads)
    meta = train.meta
    if reference is None and teacher is not None:
        reference = teacher.metrics
    torch.manual_seed(seed)
    model = build(arch, meta.tasks).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise TrainingError(-1, "the model has no trainable parameters")

    kd_points = arch.kd.points if teacher is not None else ()
    student_channels = _feature_channels(model, train.images, kd_points)
    teacher_channels = _feature_channels(teacher.model, train.images, kd_points) if kd_points else {}
    loss_fn = TrainingLoss(arch, meta, student_channels=student_channels, teacher_channels=teacher_channels).to(device)
    groups = _param_groups([model, loss_fn], fidelity.weight_decay)
    optimiser = torch.optim.AdamW(groups, lr=fidelity.lr, betas=(0.9, 0.999))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: _lr_factor(s, fidelity.steps))

    generator = torch.Generator().manual_seed(seed)
    order = torch.empty(0, dtype=torch.long)
    batch = min(fidelity.batch_size, len(train))
    curve: list[float] = []
    tail_start = fidelity.steps - max(1, fidelity.steps // 10)
    tail: dict[str, float] = {}
    rung_steps = {int(r) for r in rungs if 0 < int(r) < fidelity.steps}
    run = {"arch": arch.id, "fidelity": asdict(fidelity), "seed": int(seed), "threads": torch.get_num_threads(), "device": device.type}
    parts = {"model": model, "loss": loss_fn, "optimiser": optimiser, "schedule": schedule}
    saved = checkpoint.load(run) if checkpoint is not None else None
    first_step, trained_before = 0, 0.0
    if saved is not None:
        restore_state(saved, parts, generator, device)
        order, curve, tail = saved["order"], list(saved["curve"]), dict(saved["tail"])
        first_step, trained_before = int(saved["step"]), float(saved["train_seconds"])
        if log is not None:
            log(f"resumed at step {first_step}/{fidelity.steps} from {checkpoint.path}")
    model.train()
    train_start = time.perf_counter() - trained_before
    for step in range(first_step, fidelity.steps):
        if len(order) < batch:
            order = torch.cat([order, torch.randperm(len(train), generator=generator)])
        index, order = order[:batch], order[batch:]
        images, targets = train.batch(index.to(train.images.device))
        try:
            teacher_features = teacher.features_for(train, index, images, kd_points) if kd_points else None
            terms = _step(model, loss_fn, optimiser, schedule, images, targets, teacher_features, step)
        except TrainingError:
            raise
        except (RuntimeError, ValueError) as error:  # e.g. out of memory, a shape the model rejects
            raise TrainingError(step, f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}") from error
        value = float(terms["total"])
        curve.append(value)
        if step >= tail_start:
            for k, v in terms.items():
                if k != "total":
                    tail[k] = tail.get(k, 0.0) + float(v)
        if log is not None and fidelity.steps >= 10 and (step + 1) % (fidelity.steps // 10) == 0:
            log(f"step {step + 1}/{fidelity.steps}  loss {value:.4f}")
        if on_rung is not None and step + 1 in rung_steps:
            rung_metrics = evaluate(model, val)
            model.train()
            rung_dm = delta_m(rung_metrics, reference, meta.task_names) if reference is not None else None
            on_rung(step + 1, rung_metrics, rung_dm)
        if checkpoint is not None and checkpoint.due(step + 1, fidelity.steps):
            checkpoint.save(run, {**capture_state(parts, generator, device), "order": order, "curve": curve, "tail": tail,
                                  "step": step + 1, "train_seconds": time.perf_counter() - train_start})
    train_seconds = time.perf_counter() - train_start

    eval_start = time.perf_counter()
    metrics = evaluate(model, val)
    for task, values in metrics.items():
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        if bad:
            raise TrainingError(fidelity.steps, f"metric {task}.{bad[0]} is not finite after training")
    eval_seconds = time.perf_counter() - eval_start
    dm = delta_m(metrics, reference, meta.task_names) if reference is not None else None
    count = fidelity.steps - tail_start
    result = FitResult(
        metrics=metrics,
        delta_m=dm,
        loss_curve=curve,
        steps=fidelity.steps,
        seconds=time.perf_counter() - start + trained_before,  # a resumed run counts its earlier steps
        train_seconds=train_seconds,
        eval_seconds=eval_seconds,
        loss_terms={k: v / count for k, v in tail.items()},
    )
    return result, model
