"""The FP teacher: the ``mtdp-fp`` preset trained once per (dataset, fidelity, seed) and cached on disk.

Its metrics are the Δm reference of every trial of a study and its features the KD targets; the
features of the (unaugmented) training split are computed once and sliced per batch
(:meth:`Teacher.features_for`), so KD adds almost nothing to a training step.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn

from nas.data import DatasetMeta
from nas.errors import ConfigError
from nas.model.arch import Architecture
from nas.model.builder import build
from nas.model.tasks import get_task
from nas.training.fidelity import Fidelity
from nas.training.train import EVAL_BATCH, FitResult, TrainData, fit, resolve_device

__all__ = ["FEATURE_BANK_BYTES", "TEACHER_FORMAT", "Teacher", "teacher_dir"]


#: Largest teacher feature bank kept in memory (see :meth:`Teacher.features_for`).
FEATURE_BANK_BYTES: int = 512 * 2**20
#: Bump when the trainer changes in a way that makes cached teachers stale.
TEACHER_FORMAT = 1


def teacher_dir(results_root: str | Path, dataset: str, fidelity: str, seed: int) -> Path:
    """Where the FP teacher of (dataset, fidelity, seed) is cached under a results root.

    One place for every study and for ``bimtdp train``, so retraining an export at its study's
    fidelity reuses the study's teacher; the cache's key.json still decides whether it fits.
    """
    return Path(results_root) / "teachers" / f"{dataset}-{fidelity}-seed{int(seed)}"


class Teacher:
    """The ``mtdp-fp`` preset trained at (dataset, fidelity, seed): frozen, in eval mode.

    Its metrics are the Δm reference of every trial of a study, and its features the KD targets.
    """

    def __init__(self, arch: Architecture, model: nn.Module, metrics: dict[str, dict[str, float]]) -> None:
        self.arch = arch
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.metrics = metrics
        self._banks: dict[tuple, tuple[Tensor, dict[str, Tensor]]] = {}
        self._too_big: set[tuple] = set()

    def features_for(self, data: TrainData, index: Tensor, images: Tensor, points: tuple[str, ...]) -> dict[str, Tensor]:
        """The teacher's features at ``points`` for images ``index`` of ``data`` (= ``images``).

        The teacher is frozen and there is no augmentation, so its features for a training image
        never change: they are computed once for the whole split (one eval pass, shared by every
        trial of a study) and sliced per batch, which takes the teacher's forward out of every
        training step. Splits whose features would exceed FEATURE_BANK_BYTES are run per batch.
        """
        # Keyed by the split's image tensor itself (held, so its id cannot be reused).
        key = (id(data.images), tuple(sorted(points)))
        entry = self._banks.get(key)
        bank = entry[1] if entry is not None and entry[0] is data.images else None
        if bank is None and key not in self._too_big:
            bank = self._bank(data, tuple(sorted(points)))
            if bank is None:
                self._too_big.add(key)
            else:
                self._banks[key] = (data.images, bank)
        if bank is None:
            with torch.no_grad():
                return self.model(images, return_aux=True, feature_points=points).features
        index = index.to(next(iter(bank.values())).device)
        return {k: v.index_select(0, index) for k, v in bank.items()}

    @torch.no_grad()
    def _bank(self, data: TrainData, points: tuple[str, ...]) -> dict[str, Tensor] | None:
        first = self.model(data.images[:1], return_aux=True, feature_points=points).features
        size = sum(v.numel() * v.element_size() for v in first.values()) * len(data)
        if size > FEATURE_BANK_BYTES:
            return None
        parts: dict[str, list[Tensor]] = {k: [] for k in first}
        for start in range(0, len(data), EVAL_BATCH):
            out = self.model(data.images[start : start + EVAL_BATCH], return_aux=True, feature_points=points).features
            for k, v in out.items():
                parts[k].append(v)
        return {k: torch.cat(v) for k, v in parts.items()}

    @staticmethod
    def key(train: TrainData, val: TrainData, fidelity: Fidelity, seed: int) -> dict[str, Any]:
        """What a cached teacher must match to be reused."""
        from search_spaces import get_preset

        return {
            "format": TEACHER_FORMAT,
            "dataset": train.meta.name,
            "fidelity": fidelity.to_dict(),
            "seed": int(seed),
            "arch": get_preset("mtdp-fp").id,
            "train_images": len(train),
            "eval_images": len(val),
            "resolution": list(train.images.shape[-2:]),
        }

    @classmethod
    def load_or_train(
        cls,
        directory: str | Path,
        train: TrainData,
        val: TrainData,
        fidelity: Fidelity,
        *,
        seed: int = 0,
        device: str | torch.device = "cpu",
        log: Callable[[str], None] = print,
    ) -> "Teacher":
        """Load the teacher cached in ``directory`` if its key matches, else train and cache it.

        The cache holds ``key.json``, ``weights.pt`` (a state_dict, loaded with
        ``weights_only=True``) and ``metrics.json``; it is written to a temporary folder beside
        ``directory`` and moved into place with ``os.replace``, so a crash never leaves half a
        teacher. A cache whose key differs (dataset, fidelity, seed, teacher architecture, ...)
        is retrained and replaced, never reused.
        """
        from search_spaces import get_preset

        directory = Path(directory)
        if directory.exists() and (not directory.is_dir() or (any(directory.iterdir()) and not (directory / "key.json").exists())):
            # never replace a folder that is not a teacher cache (a typo must not delete results)
            raise ConfigError(f"teacher folder {directory} exists and is not a teacher cache (no key.json)")
        arch = get_preset("mtdp-fp")
        device = resolve_device(device)
        key = cls.key(train, val, fidelity, seed)
        cached = cls._load(directory, key, arch, train.meta, device, log)
        if cached is not None:
            return cached
        log(f"training the FP teacher ({arch.id}) at fidelity {fidelity.name!r}, seed {seed}")
        result, model = fit(arch, train, val, fidelity, seed=seed, device=device)
        log(f"teacher trained in {result.seconds:.1f} s: " + _primary_line(result.primary()))
        cls._save(directory, key, model, result)
        return cls(arch, model, result.metrics)

    @classmethod
    def _load(cls, directory: Path, key: dict, arch: Architecture, meta: DatasetMeta, device: torch.device, log) -> "Teacher | None":
        key_file = directory / "key.json"
        if not key_file.is_file():
            return None
        try:
            stored = json.loads(key_file.read_text())
            metrics = json.loads((directory / "metrics.json").read_text())["metrics"]
            state = torch.load(directory / "weights.pt", map_location=device, weights_only=True)
        except (OSError, ValueError, KeyError, RuntimeError) as error:
            log(f"teacher cache {directory} unreadable ({type(error).__name__}); retraining")
            return None
        if stored != key:
            changed = sorted(k for k in set(stored) | set(key) if stored.get(k) != key.get(k))
            log(f"teacher cache {directory} was made for other settings ({', '.join(changed)}); retraining")
            return None
        model = build(arch, meta.tasks).to(device)
        try:
            model.load_state_dict(state)
        except RuntimeError:
            log(f"teacher cache {directory} does not fit the teacher network; retraining")
            return None
        log(f"loaded the cached FP teacher from {directory}")
        return cls(arch, model, metrics)

    @staticmethod
    def _save(directory: Path, key: dict, model: nn.Module, result: FitResult) -> None:
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
        try:
            buffer = io.BytesIO()  # torch.save to a full disk says only "unexpected pos"; a write says ENOSPC
            torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
            (tmp / "weights.pt").write_bytes(buffer.getvalue())
            summary = {"metrics": result.metrics, "steps": result.steps, "seconds": result.seconds, "loss_curve": result.loss_curve}
            (tmp / "metrics.json").write_text(json.dumps(summary, indent=1))
            (tmp / "key.json").write_text(json.dumps(key, indent=1, sort_keys=True))
            if directory.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{directory.name}-old-", dir=directory.parent))
                os.replace(directory, old / "teacher")
                os.replace(tmp, directory)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, directory)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


def _primary_line(primary: Mapping[str, float]) -> str:
    return ", ".join(f"{t} {get_task(t).primary_metric} {v:.4g}" for t, v in primary.items())
