"""The packages import each other in one direction only: each layer uses the layers below it.

``analysis`` is the bottom (numpy, pandas, matplotlib; never torch or ``nas``), so a study's tables
can be analysed anywhere. Within ``nas`` the subpackages follow the flow of a search: the model,
the data it is trained on, its cost, training, packed inference, the search, then what uses a
search (tabular benchmarks, exports) and the CLI on top. Function-level imports count too: they
keep heavy dependencies lazy, they may not hide an upward import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Each unit and its layer; a unit may import its own modules and any unit of a LOWER layer.
LAYERS: dict[str, int] = {
    "analysis": 0,
    "nas": 1, "nas.errors": 1, "nas.registry": 1,  # the package itself holds the version only
    "nas.results": 2,
    "nas.model": 3,
    "nas.data": 4,
    "nas.cost": 5, "search_spaces": 5,
    "nas.training": 6,
    "nas.runtime": 7,
    "nas.search": 8,
    "nas.bench": 9, "nas.deploy": 9,
    "nas.cli": 10,
    "nas.__main__": 11,
}


def unit_of(module: str) -> str | None:
    """The unit a dotted module name belongs to (the longest key of LAYERS it starts with)."""
    matches = [unit for unit in LAYERS if module == unit or module.startswith(unit + ".")]
    return max(matches, key=len) if matches else None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every first-party module ``path`` imports, at any depth of its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return {name for name in found if name.split(".")[0] in {"nas", "analysis", "search_spaces"}}


SOURCES = sorted(p for package in ("nas", "analysis", "search_spaces") for p in (ROOT / package).rglob("*.py"))


def test_every_module_belongs_to_a_named_unit() -> None:
    """A new module of ``nas`` goes into a subpackage (or is given its layer here), never loose."""
    assert [name for name in map(module_name, SOURCES) if unit_of(name) == "nas" and name != "nas"] == []


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down(path: Path) -> None:
    unit = unit_of(module_name(path))
    upward = sorted(name for name in imports_of(path) if unit_of(name) != unit and LAYERS[unit_of(name)] >= LAYERS[unit])
    assert upward == [], f"{unit} (layer {LAYERS[unit]}) imports {upward}"
