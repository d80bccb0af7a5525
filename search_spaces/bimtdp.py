"""``bimtdp``: the full Bi-MTDP search space (every dimension of the genotype).

Order matters: a dimension's condition may only read earlier ones. The dimension names and the
categorical domains come from :mod:`nas.model.arch` (and the weight-scale list of :mod:`nas.model.binary`);
the numeric grids (width, β, KD weight) and the sign estimators are chosen here.

The estimators are a fixed list, not the registry: a study stores its space's content and refuses
to resume under another one, so registering a new estimator must not change what ``bimtdp`` is.
A registered estimator is searched through a restriction file, e.g.
``{base: bimtdp, choices: {binarizer.activation: [approx, my-estimator]}}``.

Widths stop at 0.75: at batch 32 and 64×64 on two CPU cores a training step takes ≈0.05 s at width
0.25, ≈0.10 s at 0.5, ≈0.20 s at 0.75 and ≈0.28 s at 1.0, and a proxy trial has about half a
minute for 150 steps. Width 1.0 remains a valid genotype for full retraining.
"""

from __future__ import annotations

from nas.model.arch import DISTILL_MODES, IB_POINTS, KD_POINTS, SHARING_MODES, dimension_names
from nas.model.binary import WEIGHT_SCALES
from search_spaces._space import Dimension, SearchSpace

__all__ = ["BIMTDP", "ESTIMATORS", "WIDTHS", "BETAS", "KD_WEIGHTS"]

#: The sign estimators searched (fixed: see the module docstring).
ESTIMATORS: tuple[str, ...] = ("ste", "approx")

WIDTHS: tuple[float, ...] = (0.25, 0.5, 0.75)
#: β for the per-element-averaged KL (see nas.model.blocks.IBLayer).
BETAS: tuple[float, ...] = (1e-4, 1e-3, 1e-2)
KD_WEIGHTS: tuple[float, ...] = (0.5, 1.0, 2.0)

_BOOL = (False, True)
_PAD = (("decoder.distill", ("pad",)),)
_BINARY_MODULES = tuple(name for name in dimension_names() if name.startswith("binarize."))


def _points(group: str, points: tuple[str, ...], strength: str, grid: tuple[float, ...]) -> list[Dimension]:
    dims = [Dimension(f"{group}.{p}", _BOOL, _PAD if p == "distill" else ()) for p in points]
    dims.append(Dimension(f"{group}.{strength}", grid, tuple((f"{group}.{p}", (True,)) for p in points)))
    return dims


def _dimensions() -> tuple[Dimension, ...]:
    dims = [
        Dimension("decoder.sharing", SHARING_MODES),
        Dimension("decoder.distill", DISTILL_MODES),
        Dimension("width", WIDTHS),
    ]
    dims += [Dimension(name, _BOOL, _PAD if name == "binarize.distill" else ()) for name in _BINARY_MODULES]
    anything_binary = tuple((name, (True,)) for name in _BINARY_MODULES)
    dims += [
        Dimension("binarizer.activation", ESTIMATORS, anything_binary),
        Dimension("binarizer.weight_scale", tuple(WEIGHT_SCALES), anything_binary),
        Dimension("binarizer.react", _BOOL, anything_binary),
    ]
    dims += _points("ib", IB_POINTS, "beta", BETAS)
    dims += _points("kd", KD_POINTS, "weight", KD_WEIGHTS)
    return tuple(dims)


BIMTDP = SearchSpace("bimtdp", _dimensions(), __doc__ or "")
