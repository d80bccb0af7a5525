"""Training budgets ("fidelities") for one trial, from seconds-long smoke tests to full retraining.

Budgets are counted in optimiser steps, never in wall time: binary layers are emulated (slower on
CPU than their FP counterparts) and these machines are noisy, so a time budget would penalise
binary architectures and add noise to the search.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from nas.errors import ConfigError

__all__ = ["FIDELITIES", "Fidelity", "get_fidelity"]


@dataclass(frozen=True)
class Fidelity:
    """How much training and evaluation one trial gets.

    Attributes:
        name: the name it is known by (``smoke``, ``quick``, ``proxy``, ``long``, ``full`` or a custom one).
        resolution: square training and evaluation resolution in pixels (a multiple of 32).
        train_images: number of distinct training images.
        eval_images: number of validation images the metrics are computed on.
        steps: optimiser steps.
        batch_size: images per step.
        lr: peak learning rate (AdamW; linear warm-up, then linear decay to zero, see nas.training.train).
        weight_decay: AdamW decay of FP conv/linear weights (latent binary weights, BN and biases
            get none).
    """

    name: str
    resolution: int
    train_images: int
    eval_images: int
    steps: int
    batch_size: int
    lr: float = 2e-3
    weight_decay: float = 1e-4

    def __post_init__(self) -> None:
        if self.resolution % 32:
            raise ConfigError(f"fidelity {self.name!r}: resolution must be a multiple of 32, got {self.resolution}")
        for field in ("train_images", "eval_images", "steps", "batch_size"):
            if getattr(self, field) < 1:
                raise ConfigError(f"fidelity {self.name!r}: {field} must be >= 1, got {getattr(self, field)}")
        if not self.lr > 0:
            raise ConfigError(f"fidelity {self.name!r}: lr must be > 0, got {self.lr}")
        if not self.weight_decay >= 0:
            raise ConfigError(f"fidelity {self.name!r}: weight_decay must be >= 0, got {self.weight_decay}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_(self, **changes: Any) -> "Fidelity":
        """A copy with some fields changed (e.g. a longer budget for a rank-agreement study)."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise ConfigError(f"unknown fidelity field(s) {sorted(unknown)}; known: {[f.name for f in fields(self)]}")
        return replace(self, **changes)


#: The named budgets (docs/BENCHMARKS.md has the measured times on 2 CPU cores):
#:
#: * ``smoke``: 3 steps at 32 px on 16 images, a whole fit in well under a second: the test suite and
#:   the search tests run it many times. Its metrics mean nothing.
#: * ``quick``: the README demo, 200 steps at batch 16, 64 px: measured 16 s per ``bi-mtdp-f`` trial
#:   and 13 s for the teacher on 2 threads, so a 16-trial search plus its teacher takes ≈ 5 min.
#: * ``proxy``: the default search budget, 150 steps at batch 32, 64 px, lr 4e-3 (≈ 9 epochs of 512
#:   scenes). Tuned by benchmarks/proxy_quality.py (docs/EXPERIMENTS.md, "Proxy quality"): against a
#:   5× longer training on 12 architectures it ranks Δm with Kendall τ 0.97 / 0.79 (two seeds) where
#:   the previous proxy (300 steps, lr 2e-3) had 0.91 / 0.73, at half the compute (25 vs 51 CPU s
#:   per architecture on one thread). Its Δm under-resolves semseg even more than the old proxy
#:   did (the teacher reaches 0.38 mIoU instead of 0.48): trust rankings, not absolute Δm.
#: * ``long``: retraining on a CPU, between ``proxy`` and ``full``: 1500 steps at batch 32, 64 px, lr 2e-3,
#:   2048 train / 512 val scenes. The reference budget ``proxy`` was tuned against (docs/EXPERIMENTS.md,
#:   "Proxy quality", where it is called ``long``), so the proxy's rank agreement with it is measured.
#:   Measured per architecture on one thread: docs/BENCHMARKS.md, "Fidelities".
#: * ``full``: retraining an exported architecture: 5000 steps at 128 px on 4096 scenes.
FIDELITIES: dict[str, Fidelity] = {
    f.name: f
    for f in (
        Fidelity("smoke", resolution=32, train_images=16, eval_images=8, steps=3, batch_size=4),
        Fidelity("quick", resolution=64, train_images=256, eval_images=64, steps=200, batch_size=16),
        Fidelity("proxy", resolution=64, train_images=512, eval_images=128, steps=150, batch_size=32, lr=4e-3),
        Fidelity("long", resolution=64, train_images=2048, eval_images=512, steps=1500, batch_size=32),
        Fidelity("full", resolution=128, train_images=4096, eval_images=512, steps=5000, batch_size=32),
    )
}


def get_fidelity(name: str) -> Fidelity:
    """The named fidelity; an unknown name raises ConfigError listing the known ones."""
    try:
        return FIDELITIES[name]
    except KeyError:
        raise ConfigError(f"unknown fidelity {name!r}; choose one of {list(FIDELITIES)}") from None
