"""Loading an export never runs code from its files (issue 13 #1).

Each case rewrites a real model.pt2 the way an attacker who can edit the folder would (the manifest
hash recomputed), with a payload that would create a marker file if anything executed it. Without
the archive check, torch 2.13 ran the pickled weight, the pickled sample inputs and the symbolic
expression while loading, and the guard when the graph was called.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest
import torch
from _studies import small_export  # noqa: F401  (a session fixture)

from nas.deploy.export import load_export, load_graph
from nas.errors import ConfigError


@pytest.fixture
def honest(small_export) -> Path:
    return small_export


class _Payload:
    """Pickles to a call that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _pickled(marker: Path) -> bytes:
    buffer = io.BytesIO()
    torch.save(_Payload(marker), buffer)
    return buffer.getvalue()


def _program_text(members: dict[str, bytes], replace: str, by: str) -> None:
    name = "archive/models/model.json"
    text = members[name].decode()
    assert replace in text
    members[name] = text.replace(replace, by, 1).encode()


def _pickled_weight(members: dict[str, bytes], marker: Path) -> None:
    name = "archive/data/weights/model_weights_config.json"
    config = json.loads(members[name])
    entry = next(iter(config["config"].values()))
    entry["use_pickle"] = True
    members[name] = json.dumps(config).encode()
    members[f"archive/data/weights/{entry['path_name']}"] = _pickled(marker)


def _opaque_constant(members: dict[str, bytes], marker: Path) -> None:
    name = "archive/data/constants/model_constants_config.json"
    members[name] = json.dumps({"config": {"c": {"path_name": "opaque_obj_0", "is_param": False, "use_pickle": False}}}).encode()
    members["archive/data/constants/opaque_obj_0"] = _pickled(marker)


def _pickled_constant(members: dict[str, bytes], marker: Path) -> None:
    name = "archive/data/constants/model_constants_config.json"
    members[name] = json.dumps({"config": {"c": {"path_name": "tensor_0", "is_param": False, "use_pickle": True}}}).encode()
    members["archive/data/constants/tensor_0"] = _pickled(marker)


def _sample_inputs(members: dict[str, bytes], marker: Path) -> None:
    members["archive/data/sample_inputs/model.pt"] = _pickled(marker)


def _symbolic_expression(members: dict[str, bytes], marker: Path) -> None:
    text = members["archive/models/model.json"].decode()
    symbol = text.split('"expr_str": "', 1)[1].split('"', 1)[0]
    _program_text(members, f'"expr_str": "{symbol}"', f'"expr_str": "__import__(\'os\').system(\'touch {marker}\')"')


def _guard(members: dict[str, bytes], marker: Path) -> None:
    _program_text(members, '"guards_code": [', f'"guards_code": ["__import__(\'os\').system(\'touch {marker}\') == 0", ')


def _operator(members: dict[str, bytes], marker: Path) -> None:
    _program_text(members, '"target": "torch.ops.aten.conv2d.default"', '"target": "torch.os.system"')


def _native_code(members: dict[str, bytes], marker: Path) -> None:
    members["archive/data/aotinductor/model/model.so"] = b"\x7fELF"


ATTACKS = {
    "pickled weight": (_pickled_weight, "weights payload .* is pickled"),
    "pickled constant": (_pickled_constant, "constants payload 'c' is pickled"),
    "opaque constant": (_opaque_constant, "archive member archive/data/constants/opaque_obj_0"),
    "pickled sample inputs": (_sample_inputs, "sample inputs that are not plain tensors"),
    "symbolic expression": (_symbolic_expression, "symbolic expression"),
    "guard": (_guard, "guard"),
    "operator": (_operator, "operator 'torch.os.system'"),
    "native code": (_native_code, "archive member archive/data/aotinductor"),
}


def _tampered(honest: Path, tmp_path: Path, attack) -> Path:
    """A copy of ``honest`` whose model.pt2 was rewritten by ``attack`` and whose manifest was recomputed."""
    folder = tmp_path / honest.name
    shutil.copytree(honest, folder)
    with zipfile.ZipFile(folder / "model.pt2") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    attack(members, tmp_path / "marker")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    (folder / "model.pt2").write_bytes(buffer.getvalue())
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["model.pt2"] = {"sha256": hashlib.sha256(buffer.getvalue()).hexdigest(), "bytes": len(buffer.getvalue())}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_an_honest_graph_loads_and_runs(honest) -> None:
    graph = load_graph(honest)
    _, model = load_export(honest)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        assert all(torch.allclose(graph(x)[t], y, atol=1e-5) for t, y in model(x).items())


@pytest.mark.parametrize("name", list(ATTACKS))
def test_a_tampered_graph_is_refused_without_running_its_payload(honest, tmp_path, name) -> None:
    attack, message = ATTACKS[name]
    folder = _tampered(honest, tmp_path, attack)
    with pytest.raises(ConfigError, match=f"model.pt2: refused: {message}") as error:
        graph = load_graph(folder)
        graph(torch.randn(1, 3, 64, 64))  # only reached if loading accepted it: the guard runs here
    assert len(str(error.value).splitlines()) == 1
    assert not (tmp_path / "marker").exists()
    load_export(folder)  # weights.pt is untouched and loads with weights_only=True



class _Stateful(torch.nn.Module):
    """A TorchScript module whose __setstate__ would run when the file loads."""

    def __init__(self) -> None:
        super().__init__()
        self.x = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.x

    @torch.jit.export
    def __getstate__(self) -> tuple[int, bool]:
        return (self.x, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[int, bool]) -> None:
        self.x = state[0]
        self.training = state[1]


def _torchscript_bytes(module: torch.nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.jit.save(module, buffer)
    return buffer.getvalue()


def test_torchscript_with_code_that_runs_at_load_is_refused() -> None:
    from nas.deploy.graph_archive import check_graph_archive

    traced = torch.jit.trace(torch.nn.Conv2d(3, 2, 3), torch.zeros(1, 3, 8, 8))
    check_graph_archive(_torchscript_bytes(traced), "torchscript", "model.ts")  # what our fallback writes: accepted
    with pytest.raises(ConfigError, match="model.ts: refused: .* defines __setstate__"):
        check_graph_archive(_torchscript_bytes(torch.jit.script(_Stateful())), "torchscript", "model.ts")
    with pytest.raises(ConfigError, match="model.ts: not a graph archive"):
        check_graph_archive(b"not a zip", "torchscript", "model.ts")
