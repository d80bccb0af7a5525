"""The per-layer latency lookup table: what a pass's calls are, how entries are kept, the prediction."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nas.runtime import layer_table
from nas.runtime.arch_latency import this_processor
from nas.runtime.layer_table import LayerTable, _copy, predicted_latency, trace
from search_spaces import get_space


class Split(nn.Module):
    """A conv, then torch functions outside any layer: a split into strided views, a sigmoid of one."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.conv(x.contiguous(memory_format=torch.channels_last)).split(4, dim=1)
        return F.interpolate(torch.sigmoid(a) + b, scale_factor=2.0, mode="bilinear")


def test_a_trace_lists_layers_and_the_torch_functions_between_them_with_their_inputs() -> None:
    calls = trace(Split(), (1, 3, 16, 16))
    keys = [call.key for call in calls]
    assert [k.split("|")[0].split("(")[0].rsplit(".", 1)[-1] for k in keys] == [
        "contiguous", "Conv2d", "split", "sigmoid", "add", "interpolate"]  # the conv's own conv2d is the layer's
    assert keys[0].endswith("|[T(1, 3, 16, 16):float32:c]|{memory_format=torch.channels_last}")
    assert keys[1] == "Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))|[T(1, 3, 16, 16):float32:cl]|{}"
    assert "scale_factor=2.0" in keys[5] and "mode='bilinear'" in keys[5]
    # a channel slice of a channels-last tensor is a strided view: its strides are in the key
    assert keys[3].endswith("|[T(1, 4, 16, 16):float32:s(2048, 1, 128, 8)]|{}")
    assert all(call.run is not None for call in calls)


def test_a_copy_keeps_the_strides_of_a_view() -> None:
    view = torch.randn(1, 8, 4, 4).contiguous(memory_format=torch.channels_last)[:, :4]
    copied = _copy([view, 2])
    assert copied[0].stride() == view.stride() and torch.equal(copied[0], view) and copied[1] == 2
    assert copied[0].data_ptr() != view.data_ptr()


def test_entries_are_measured_once_and_kept_per_processor(tmp_path) -> None:
    table = LayerTable.open(tmp_path)
    calls = table.fill(Split(), (1, 3, 16, 16))
    assert set(table.entries) == {c.key for c in calls} and all(v > 0 for v in table.entries.values())
    assert all(call.run is None for call in calls)  # the inputs' copies are freed
    table.scale = 1.5
    table.save()
    again = LayerTable.open(tmp_path)
    assert again.entries == table.entries and again.scale == 1.5
    refill = again.fill(Split(), (1, 3, 16, 16))
    assert [c.key for c in refill] == [c.key for c in calls] and again.entries == table.entries  # nothing new
    assert again.predict(refill) == pytest.approx(1.5 * sum(again.entries[c.key] for c in refill))
    other = LayerTable.open(tmp_path, threads=2)  # another processor key: another file, empty
    assert other.entries == {} and other.path != table.path
    stored = json.loads(table.path.read_text())
    stored["processor"]["cpu"] = "Another CPU"  # a file that is not this processor's is not read
    table.path.write_text(json.dumps(stored))
    assert LayerTable.open(tmp_path).entries == {}


def test_the_prediction_is_calibrated_once_then_repeatable_without_measuring_again(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(layer_table, "_OPEN", {})
    monkeypatch.setattr(layer_table, "_PREDICTED", {})
    monkeypatch.setattr(layer_table, "CALIBRATION", ("bi-mtdp-c",))  # two networks keep the test short
    monkeypatch.setattr(layer_table, "CALIBRATION_SAMPLES", 1)
    arch = next(iter(get_space("mini").enumerate()))
    first = predicted_latency(arch, "synth", cache_dir=tmp_path, resolution=(64, 64))
    here = this_processor()
    assert first["latency"] > 0 and first["latency_calls"] > 10
    assert (first["latency_cpu"], first["latency_isa"], first["latency_threads"]) == (here.cpu, here.isa, 1)
    stored = json.loads(next(tmp_path.glob("layer-table-*.json")).read_text())
    assert stored["scale"] > 0 and len(stored["entries"]) > 10

    import nas.runtime.arch_latency as arch_latency

    monkeypatch.setattr(arch_latency, "packed_latency", lambda *a, **k: pytest.fail("measured end to end"))
    monkeypatch.setattr(layer_table, "time_call", lambda run: pytest.fail("timed an entry again"))
    assert predicted_latency(arch, "synth", cache_dir=tmp_path, resolution=(64, 64)) == first
    monkeypatch.setattr(layer_table, "_OPEN", {})  # a new process: the table is read from the cache
    monkeypatch.setattr(layer_table, "_PREDICTED", {})
    assert predicted_latency(arch, "synth", cache_dir=tmp_path, resolution=(64, 64)) == first


def test_layer_times_carry_their_input_shapes() -> None:
    from nas.runtime.latency import measure_latency

    result = measure_latency(Split(), (1, 3, 16, 16), repeats=2, warmup=0)
    conv = next(layer for layer in result.layers if layer.name == "conv")
    assert conv.input_shapes == ((1, 3, 16, 16),)
    assert json.loads(json.dumps(result.to_dict()))["layers"][0]["input_shapes"] == [[1, 3, 16, 16]]


def test_a_network_built_to_be_timed_is_packed_in_place_like_a_copy() -> None:
    from nas.data import dataset_meta
    from nas.model.builder import build
    from nas.runtime.packed import pack_model

    arch = next(iter(get_space("mini").enumerate()))
    torch.manual_seed(0)
    model = build(arch, dataset_meta("synth").tasks)
    copied = pack_model(model)
    assert copied is not model
    in_place = pack_model(model, copy_first=False)
    assert in_place is model
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        first, second = copied(x), in_place(x)
    assert first.keys() == second.keys() and len(first) > 0
    assert all(torch.equal(first[t], second[t]) for t in first)
