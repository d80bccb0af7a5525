"""``mini``: a small, enumerable subspace of ``bimtdp`` (144 architectures) for tests and benchmarks.

Kept (the dimensions that change the module graph or the cost, or the training signal cheaply):

* ``binarize.neck``, ``binarize.decoders``, ``binarize.distill``: the OPs axis beyond the backbone;
  every architecture has a binary backbone (the premise of Bi-MTDP) and FP heads (binary 1×1
  predictors save little and cost much accuracy), so the OPs spread is the part a search decides.
* ``decoder.sharing`` (all three) and ``decoder.distill`` (none / pad): the multi-task structure.
* ``ib.backbone`` (β fixed at 1e-3) and ``kd.output`` (weight 1): one IB and one KD switch, at the
  points the paper uses, so that benchmarks exercise both losses.

Fixed: binarizer (Bi-Real: ``approx`` estimator, per-channel weight scale, no ReAct), the other IB
and KD points, and width 0.25 (≈0.05 s per training step), to keep the count at 3·(1+2)·2·2·2·2 =
144 and a full sweep cheap. Defined by restricting ``bimtdp``, so it holds no copy of any choice
list it does not narrow.
"""

from __future__ import annotations

from search_spaces._space import SearchSpace
from search_spaces.bimtdp import BIMTDP

__all__ = ["MINI"]

_RESTRICTION: dict[str, list] = {
    "width": [0.25],
    "binarize.stage1": [True],
    "binarize.stage2": [True],
    "binarize.stage3": [True],
    "binarize.stage4": [True],
    "binarize.heads": [False],
    "binarizer.activation": ["approx"],
    "binarizer.weight_scale": ["channel"],
    "binarizer.react": [False],
    "ib.neck": [False],
    "ib.decoder": [False],
    "ib.distill": [False],
    "ib.beta": [1e-3],
    "kd.backbone": [False],
    "kd.neck": [False],
    "kd.decoder": [False],
    "kd.distill": [False],
    "kd.weight": [1.0],
}

MINI: SearchSpace = BIMTDP.with_choices(_RESTRICTION, name="mini", doc=__doc__ or "")
