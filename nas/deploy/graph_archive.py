"""Refusing graph files that would run code while they load: the check before ``torch.export.load``.

An export folder is data anyone may have edited (its manifest hash has no key: whoever can change a
file can recompute it), yet ``torch.export.load`` trusts its archive. In torch 2.13 it unpickles
payloads marked ``use_pickle`` with ``torch.load(weights_only=False)`` (weights and tensor
constants), ``pickle.loads`` opaque objects, loads torchbind objects and AOTInductor shared
libraries, falls back to ``weights_only=False`` for the sample inputs, ``sympy.sympify`` s (that
is, ``eval`` s) every symbolic shape, ``exec`` s the guard source in ``models/model.json`` when
``.module()`` builds the callable, and resolves node targets to any callable reachable from
``torch``. None of these is needed by the graphs we write, so :func:`check_graph_archive` accepts
only what they contain and refuses everything else, before torch reads a byte:

* archive members: the names torch's writer uses for one program ``model``; raw weight and tensor
  constant payloads only (no pickled, custom or opaque object, no AOTInductor code, no legacy
  pickle files);
* the sample inputs: loadable with ``torch.load(weights_only=True)`` (so torch's first, safe
  attempt succeeds and its unsafe fallback never runs);
* the program JSON: node targets are ``torch.ops.aten`` operators (or plain ``operator``
  arithmetic), symbolic expressions are sympy constructors of integers and symbols, guards are
  comparisons of input sizes, tree specs are tuples, lists and dicts, and no string holds a
  carriage return or control character (FX writes node metadata into generated source).

A TorchScript file (``model.ts``) holds no Python pickle (its unpickler builds TorchScript types
only), but a ``__setstate__`` in its code runs at load time: refused.
"""

from __future__ import annotations

import ast
import io
import json
import re
import zipfile
from typing import Any, Callable, Iterator

from nas.errors import ConfigError

__all__ = ["check_graph_archive"]

_MODEL = "model"  # torch.export.save names its one program "model"
_PT2_MEMBERS = re.compile(
    r"(?:\.data/version|\.data/serialization_id|byteorder|archive_format|archive_version"
    rf"|models/{_MODEL}\.json|data/sample_inputs/{_MODEL}\.pt"
    rf"|data/weights/{_MODEL}_weights_config\.json|data/weights/weight_\d+"
    rf"|data/constants/{_MODEL}_constants_config\.json|data/constants/tensor_\d+)"
)
_PAYLOAD_NAMES = {"weights": re.compile(r"weight_\d+"), "constants": re.compile(r"tensor_\d+")}
_TARGET = re.compile(r"torch\.ops\.aten\.\w+\.\w+|_operator\.(?:getitem|add|sub|mul|floordiv|truediv|mod|neg|pow|eq|ne|lt|le|gt|ge)")
_SYMPY_NAMES = frozenset({
    "Add", "Mul", "Pow", "Integer", "Rational", "Symbol", "Max", "Min", "Mod", "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "And", "Or", "Not",
    "FloorDiv", "CeilDiv", "CleanDiv", "ModularIndexing", "PythonMod", "IntTrueDiv", "PowByNatural", "Where", "True", "False",
})
_GUARD_NAMES = frozenset({"L", "max", "min"})
_TREE_TYPES = frozenset({None, "builtins.tuple", "builtins.list", "builtins.dict", "collections.OrderedDict"})
_METADATA = frozenset({"stack_trace", "nn_module_stack", "torch_fn"})
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x85\u2028\u2029]")


def check_graph_archive(data: bytes, graph_format: str, where: str) -> None:
    """Refuse a graph file (bytes of ``model.pt2`` / ``model.ts``) that could run code while loading.

    Raises:
        ConfigError: one line naming ``where`` and the first thing refused.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise ConfigError(f"{where}: not a graph archive ({error})") from None
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: refused: the archive lists a member twice")
    roots = {name.split("/", 1)[0] for name in names}
    if len(roots) != 1 or any("/" not in name for name in names):
        raise ConfigError(f"{where}: refused: not one archive folder ({sorted(roots)[:3]})")
    root = roots.pop() + "/"
    check = _check_pt2 if graph_format == "torch.export" else _check_torchscript
    with archive:
        check(archive, root, where)


def _refuse(where: str, what: str) -> ConfigError:
    return ConfigError(f"{where}: refused: {what} (loading it could run code; exports never need it)")


def _check_torchscript(archive: zipfile.ZipFile, root: str, where: str) -> None:
    for name in archive.namelist():
        if name.startswith(f"{root}code/") and name.endswith(".py"):
            if b"__setstate__" in archive.read(name):
                raise _refuse(where, f"{name} defines __setstate__")


def _check_pt2(archive: zipfile.ZipFile, root: str, where: str) -> None:
    for name in archive.namelist():
        if not _PT2_MEMBERS.fullmatch(name[len(root):]):
            raise _refuse(where, f"archive member {name}")
    for kind, pattern in _PAYLOAD_NAMES.items():
        config = _json(archive, f"{root}data/{kind}/{_MODEL}_{kind}_config.json", where)
        for fqn, payload in (config.get("config") or {}).items():
            if not isinstance(payload, dict) or payload.get("use_pickle") is not False:
                raise _refuse(where, f"{kind} payload {fqn!r} is pickled")
            if not pattern.fullmatch(str(payload.get("path_name"))):
                raise _refuse(where, f"{kind} payload {fqn!r} is a {payload.get('path_name')!r} object, not a raw tensor")
    _check_sample_inputs(archive, f"{root}data/sample_inputs/{_MODEL}.pt", where)
    _check_program(_json(archive, f"{root}models/{_MODEL}.json", where), where)


def _json(archive: zipfile.ZipFile, name: str, where: str) -> dict[str, Any]:
    try:
        value = json.loads(archive.read(name))
    except KeyError:
        raise ConfigError(f"{where}: not a torch.export archive ({name} is missing)") from None
    except ValueError as error:
        raise ConfigError(f"{where}: {name} is not JSON ({error})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {name} is not a JSON object")
    return value


def _check_sample_inputs(archive: zipfile.ZipFile, name: str, where: str) -> None:
    import torch

    if name not in archive.namelist():
        return
    try:
        torch.load(io.BytesIO(archive.read(name)), map_location="cpu", weights_only=True)
    except Exception as error:  # anything weights_only refuses would reach torch's unsafe fallback
        raise _refuse(where, f"sample inputs that are not plain tensors ({type(error).__name__})") from None


def _strings(value: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair of a parsed JSON document, depth first; list items keep their key."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield k, v
            yield from _strings(v, k)
    elif isinstance(value, list):
        for item in value:
            if not isinstance(item, (dict, list)):
                yield key, item
            yield from _strings(item, key)


def _check_program(program: dict[str, Any], where: str) -> None:
    for key, value in _strings(program):
        if key == "metadata" and isinstance(value, dict) and not set(value) <= _METADATA:
            raise _refuse(where, f"node metadata {sorted(set(value) - _METADATA)}")
        if not isinstance(value, str):
            continue
        if _CONTROL.search(value) or ("\n" in value and key != "stack_trace"):
            raise _refuse(where, f"a control character in {key!r}")
        if key in ("target", "as_operator") and not _TARGET.fullmatch(value):
            raise _refuse(where, f"operator {value[:80]!r}")
        elif key == "expr_str" and not _expression_ok(value, _SYMPY_NAMES, _sympy_node_ok):
            raise _refuse(where, f"symbolic expression {value[:80]!r}")
        elif key == "guards_code" and not _expression_ok(value, _GUARD_NAMES, _guard_node_ok):
            raise _refuse(where, f"guard {value[:80]!r}")
        elif key in ("in_spec", "out_spec") and not _tree_spec_ok(value):
            raise _refuse(where, f"{key} {value[:80]!r}")


def _expression_ok(text: str, names: frozenset[str], node_ok: Callable[[ast.AST], bool]) -> bool:
    """``text`` parses as one expression built only of allowed nodes and names (nothing is evaluated)."""
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id not in names:
            return False
        if not node_ok(node):
            return False
    return True


_ARITHMETIC = (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Mod, ast.USub, ast.UAdd, ast.Not, ast.And, ast.Or,
               ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Load)
_EXPRESSION = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.Name, *_ARITHMETIC)


def _sympy_node_ok(node: ast.AST) -> bool:
    """Constructor calls (``Mul(Integer(2), Symbol('s0', positive=True))``) of names, ints, bools, symbol names."""
    if isinstance(node, ast.Call):
        return isinstance(node.func, ast.Name)
    if isinstance(node, ast.keyword):
        return node.arg is not None and node.arg.isidentifier() and not node.arg.startswith("_")
    if isinstance(node, ast.Constant):
        return isinstance(node.value, (bool, int)) or (isinstance(node.value, str) and node.value.isidentifier())
    return isinstance(node, _EXPRESSION)


def _guard_node_ok(node: ast.AST) -> bool:
    """Size comparisons: ``(L['x'].size()[2] % 32) == 0``, ``max(1, ...)``; nothing else is called or read."""
    if isinstance(node, ast.Call):
        if isinstance(node.func, ast.Name):
            return node.func.id in ("max", "min") and not node.keywords
        return isinstance(node.func, ast.Attribute) and node.func.attr == "size" and not node.args and not node.keywords
    if isinstance(node, ast.Attribute):
        return node.attr == "size"
    if isinstance(node, ast.Subscript):
        return isinstance(node.slice, ast.Constant)
    if isinstance(node, ast.Constant):
        return isinstance(node.value, int) or (isinstance(node.value, str) and node.value.isidentifier())
    return isinstance(node, _EXPRESSION)


def _tree_spec_ok(text: str) -> bool:
    """A pytree spec of tuples, lists and dicts with JSON contexts (no enum, no defaultdict factory)."""
    try:
        protocol, spec = json.loads(text)
    except (ValueError, TypeError):
        return False
    if protocol != 1 or "__enum__" in text:
        return False
    stack = [spec]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict) or node.get("type") not in _TREE_TYPES:
            return False
        stack.extend(node.get("children_spec") or [])
    return True
