"""Counting at a reduced resolution and scaling is exact for every Bi-MTDP network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nas.cost.arch_cost import cost_report, counting_scale
from nas.cost.bitops import count
from nas.data import dataset_meta
from nas.model.builder import build
from search_spaces import PRESETS, get_space


def test_counting_scale_keeps_maps_whole() -> None:
    assert counting_scale(256, 256) == 4
    assert counting_scale(480, 640) == 5
    assert counting_scale(512, 512) == 8
    assert counting_scale(64, 64) == 1
    assert counting_scale(96, 160) == 1


MINI = get_space("mini").sample(np.random.default_rng(0))


@pytest.mark.parametrize(
    "dataset,archs",
    [("synth", [*PRESETS.values(), MINI]), ("nyud", [PRESETS["bi-mtdp-c"], MINI])],  # 480x640 is slow to count
)
def test_scaled_count_equals_direct_count(dataset: str, archs: list) -> None:
    meta = dataset_meta(dataset)
    for arch in archs:
        direct = count(build(arch, meta.tasks), torch.zeros(1, 3, *meta.cost_resolution))
        scaled = cost_report(arch, dataset)
        assert (scaled.flops, scaled.bops, scaled.other) == (direct.flops, direct.bops, direct.other)
        assert scaled.size_bits == direct.size_bits and scaled.input_shape == direct.input_shape
        assert scaled.table()["bops"].sum() == direct.bops
