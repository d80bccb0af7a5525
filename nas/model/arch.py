"""The genotype: one Bi-MTDP variant as a frozen, validated, JSON/YAML-able dataclass.

An :class:`Architecture` says which modules are binarized, how, where information-bottleneck (IB)
layers sit, where knowledge distillation (KD) from the full-precision teacher applies, how the task
decoders are shared and how wide the network is. It says nothing about the task set: the same
architecture builds for synth's four tasks or PASCAL's five (see :func:`nas.model.builder.build`).

The dictionary form is nested by group, the groups of DESIGN.md::

    {"binarize":  {"stages": [true, true, true, true], "neck": true, "decoders": true,
                   "distill": true, "heads": false},
     "binarizer": {"activation": "approx", "weight_scale": "channel", "react": false},
     "ib":        {"points": ["backbone"], "beta": 0.001},
     "kd":        {"points": ["neck", "decoder"], "weight": 1.0},
     "decoder":   {"sharing": "separate", "distill": "pad"},
     "width": 0.25}

Missing fields take the dataclass defaults; unknown fields, wrong types and values outside the
allowed choices raise :class:`~nas.errors.ConfigError` naming the field (``ib.points``) and what is
allowed. Fields that have no effect are canonicalised so that two architectures that build the same
network compare equal and share an :attr:`~Architecture.id`: the binarizer of a network with no
binary module, β without IB points, the KD weight without KD points, and ``binarize.distill``
without a cross-task module.

The flat form (:meth:`Architecture.to_flat` / :meth:`Architecture.from_flat`) has one entry per
dimension: a tuple field becomes one flag per member (``binarize.stage1`` …, ``ib.neck``,
``kd.output``), every other field keeps its dotted path (``ib.beta``, ``decoder.sharing``,
``width``). It is derived from the dataclass fields, and :func:`dimension_names` is the one naming
scheme outside the nested form: search-space dimensions, Optuna parameters, YAML restrictions and
the ``arch.<dimension>`` columns of the trials table.

The field domains (:data:`IB_POINTS`, :data:`SHARING_MODES`, ...) live here and nowhere else; the
search spaces in :mod:`search_spaces` choose subsets of them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field, fields, is_dataclass, replace
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Mapping

from analysis.atomic import atomic_write_text
from nas.errors import ConfigError

__all__ = [
    "Architecture",
    "Binarize",
    "Binarizer",
    "DISTILL_MODES",
    "DecoderSpec",
    "IB",
    "IB_POINTS",
    "KD",
    "KD_POINTS",
    "MAX_WIDTH",
    "SHARING_MODES",
    "STAGES",
    "check_dimension",
    "check_field",
    "dimension_names",
    "flatten",
    "estimators",
    "load_architecture",
    "points_in",
    "save_architecture",
]

#: The backbone stages that can be binarized, one flag each (``binarize.stage1`` ...).
STAGES: tuple[str, ...] = ("stage1", "stage2", "stage3", "stage4")
#: Where a variational IB layer can sit (in forward order).
IB_POINTS: tuple[str, ...] = ("backbone", "neck", "decoder", "distill")
#: Where the FP teacher can guide the student; ``output`` distils the final predictions.
KD_POINTS: tuple[str, ...] = ("backbone", "neck", "decoder", "distill", "output")
#: ``separate``: one decoder per task; ``grouped``: one per task group (semantic / geometric);
#: ``shared``: one decoder for all tasks, the task heads alone are task-specific.
SHARING_MODES: tuple[str, ...] = ("separate", "grouped", "shared")
#: ``none``: heads read the decoder features; ``pad``: PAD-Net-style cross-task distillation.
DISTILL_MODES: tuple[str, ...] = ("none", "pad")
#: Widths above this are a typo rather than a design (a 2× ResNet-18 already has 1024 channels).
MAX_WIDTH: float = 2.0


def estimators() -> tuple[str, ...]:
    """The registered sign estimators (read from :mod:`nas.model.binary` so that new ones join at once)."""
    from nas.model.binary import ESTIMATORS

    return tuple(ESTIMATORS)


def _weight_scales() -> tuple[str, ...]:
    from nas.model.binary import WEIGHT_SCALES

    return tuple(WEIGHT_SCALES)


@dataclass(frozen=True)
class Binarize:
    """Which modules run binary 3×3/1×1 convs (the stem is always full precision).

    Attributes:
        stages: backbone stages 1-4.
        neck: the 3×3 fusion units of the neck (its 1×1 lateral projections stay FP, like Bi-Real's
            downsample shortcuts).
        decoders: the task decoders' 3×3 units.
        distill: the cross-task distillation module's message and gate convs.
        heads: the final 1×1 task predictors.
    """

    stages: tuple[bool, bool, bool, bool] = field(default=(False,) * 4, metadata={"flags": STAGES})
    neck: bool = False
    decoders: bool = False
    distill: bool = False
    heads: bool = False

    def any(self) -> bool:
        return any(self.stages) or self.neck or self.decoders or self.distill or self.heads


@dataclass(frozen=True)
class Binarizer:
    """How every binary conv binarizes: activation sign estimator, weight scale, ReAct on/off."""

    activation: str = "approx"
    weight_scale: str = "channel"
    react: bool = False


@dataclass(frozen=True)
class IB:
    """Variational information-bottleneck layers: where (a subset of :data:`IB_POINTS`) and β."""

    points: tuple[str, ...] = field(default=(), metadata={"subset": IB_POINTS})
    beta: float = 0.0


@dataclass(frozen=True)
class KD:
    """Knowledge distillation from the FP teacher: where (a subset of :data:`KD_POINTS`) and weight."""

    points: tuple[str, ...] = field(default=(), metadata={"subset": KD_POINTS})
    weight: float = 0.0


@dataclass(frozen=True)
class DecoderSpec:
    """Decoder sharing (:data:`SHARING_MODES`) and cross-task distillation (:data:`DISTILL_MODES`)."""

    sharing: str = "separate"
    distill: str = "pad"


_GROUPS: dict[str, type] = {"binarize": Binarize, "binarizer": Binarizer, "ib": IB, "kd": KD, "decoder": DecoderSpec}


def points_in(kind: str, distill: str) -> tuple[str, ...]:
    """The IB (``kind='ib'``) or KD (``kind='kd'``) points that exist given the distill mode."""
    points = IB_POINTS if kind == "ib" else KD_POINTS
    return tuple(p for p in points if p != "distill" or distill != "none")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_field(path: str, value: Any) -> Any:
    """Validate one field value by its dotted path and return it in canonical Python form.

    This is the single place that knows each field's type and domain: :class:`Architecture` and the
    search spaces (which check their choices with it) both call it.

    Raises:
        ConfigError: naming ``path`` and what is allowed.
    """
    def bad(allowed: str) -> ConfigError:
        return ConfigError(f"{path}: expected {allowed}, got {value!r}")

    def choice(allowed: tuple[str, ...]) -> str:
        if not isinstance(value, str) or value not in allowed:
            raise bad(f"one of {list(allowed)}")
        return value

    def flag() -> bool:
        if not isinstance(value, bool):
            raise bad("true or false")
        return value

    def subset(allowed: tuple[str, ...]) -> tuple[str, ...]:
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise bad(f"a list drawn from {list(allowed)}")
        for item in value:
            if item not in allowed:
                raise ConfigError(f"{path}: unknown point {item!r}; allowed: {list(allowed)}")
        if len(set(value)) != len(value):
            raise bad("a list without repeats")
        return tuple(p for p in allowed if p in value)  # canonical order

    def number(low: float, high: float, *, low_open: bool) -> float:
        ok = _is_number(value) and (value > low if low_open else value >= low) and value <= high
        if not ok:
            raise bad(f"a number in {'(' if low_open else '['}{low:g}, {high:g}]")
        return float(value)

    if path == "binarize.stages":
        if isinstance(value, str) or not isinstance(value, (list, tuple)) or len(value) != 4 \
                or not all(isinstance(v, bool) for v in value):
            raise bad("a list of 4 booleans (stages 1-4)")
        return tuple(value)
    if path in ("binarize.neck", "binarize.decoders", "binarize.distill", "binarize.heads", "binarizer.react"):
        return flag()
    if path == "binarizer.activation":
        return choice(estimators())
    if path == "binarizer.weight_scale":
        return choice(_weight_scales())
    if path == "ib.points":
        return subset(IB_POINTS)
    if path == "kd.points":
        return subset(KD_POINTS)
    if path in ("ib.beta", "kd.weight"):
        return number(0.0, 1e6, low_open=False)
    if path == "decoder.sharing":
        return choice(SHARING_MODES)
    if path == "decoder.distill":
        return choice(DISTILL_MODES)
    if path == "width":
        return number(0.0, MAX_WIDTH, low_open=True)
    raise ConfigError(f"unknown field {path!r}; allowed: {_all_paths()}")


def _all_paths() -> list[str]:
    paths = []
    for group, cls in _GROUPS.items():
        paths += [f"{group}.{f.name}" for f in fields(cls)]
    return paths + ["width"]


# --------------------------------------------------------------------------------------- flat form
@dataclass(frozen=True)
class _FlatDimension:
    """One flat dimension and the field it reads: the value itself, or one member of a tuple field.

    ``kind`` is ``value`` (the field as is), ``flag`` (the position of ``member`` in ``members``
    of a tuple of booleans, e.g. ``binarize.stage2``) or ``member`` (whether ``member`` is in a
    subset of ``members``, e.g. ``ib.neck``).
    """

    name: str
    path: str
    kind: str
    member: str = ""
    members: tuple[str, ...] = ()


@lru_cache(maxsize=None)
def _flat_layout() -> tuple[_FlatDimension, ...]:
    """The flat dimensions in dataclass order, derived from the fields and their metadata."""
    layout = []
    for group, cls in _GROUPS.items():
        for f in fields(cls):
            path = f"{group}.{f.name}"
            if "flags" in f.metadata:
                members = f.metadata["flags"]
                layout += [_FlatDimension(f"{group}.{m}", path, "flag", m, members) for m in members]
            elif "subset" in f.metadata:
                members = f.metadata["subset"]
                layout += [_FlatDimension(f"{group}.{m}", path, "member", m, members) for m in members]
            else:
                layout.append(_FlatDimension(path, path, "value"))
    return tuple(layout) + tuple(_FlatDimension(f.name, f.name, "value") for f in fields(Architecture) if f.name not in _GROUPS)


def dimension_names() -> tuple[str, ...]:
    """Every flat dimension name (``binarize.stage1``, ``ib.neck``, ``decoder.sharing``, ``width``, ...).

    The one naming scheme of the architecture outside its nested dictionary form: search-space
    dimensions, Optuna parameters, YAML restrictions and the ``arch.<dimension>`` table columns.
    """
    return tuple(d.name for d in _flat_layout())


def _flat_dimension(name: str) -> _FlatDimension:
    for dim in _flat_layout():
        if dim.name == name:
            return dim
    raise ConfigError(f"unknown dimension {name!r}; allowed: {list(dimension_names())}")


def flatten(nested: Mapping[str, Any]) -> dict[str, Any]:
    """The dictionary form (as :meth:`Architecture.to_dict` writes it) → ``{dimension: value}``.

    Not validated, so that a stored architecture reads even where a plug-in it names (a sign
    estimator) is not registered; :meth:`Architecture.to_flat` is the validated way.
    """
    flat: dict[str, Any] = {}
    for dim in _flat_layout():
        group, _, name = dim.path.partition(".")
        value = nested[group][name] if name else nested[group]
        if dim.kind == "flag":
            value = bool(value[dim.members.index(dim.member)])
        elif dim.kind == "member":
            value = dim.member in value
        flat[dim.name] = value
    return flat


def check_dimension(name: str, value: Any) -> Any:
    """Validate one flat dimension's value (a flag is a boolean; a field via :func:`check_field`)."""
    if _flat_dimension(name).kind == "value":
        return check_field(name, value)
    if not isinstance(value, bool):
        raise ConfigError(f"{name}: expected true or false, got {value!r}")
    return value


@dataclass(frozen=True)
class Architecture:
    """One Bi-MTDP variant (see the module docstring for the dictionary form)."""

    binarize: Binarize = field(default_factory=Binarize)
    binarizer: Binarizer = field(default_factory=Binarizer)
    ib: IB = field(default_factory=IB)
    kd: KD = field(default_factory=KD)
    decoder: DecoderSpec = field(default_factory=DecoderSpec)
    width: float = 1.0

    def __post_init__(self) -> None:
        # Validate every field (also when built in Python, not only from a file) and canonicalise.
        for group, cls in _GROUPS.items():
            part = getattr(self, group)
            if not isinstance(part, cls):
                raise ConfigError(f"{group}: expected a {cls.__name__}, got {type(part).__name__}")
            values = {f.name: check_field(f"{group}.{f.name}", getattr(part, f.name)) for f in fields(cls)}
            object.__setattr__(self, group, cls(**values))
        object.__setattr__(self, "width", check_field("width", self.width))
        distill = self.decoder.distill
        for kind in ("ib", "kd"):
            allowed = points_in(kind, distill)
            for point in getattr(self, kind).points:
                if point not in allowed:
                    raise ConfigError(
                        f"{kind}.points: point {point!r} does not exist when decoder.distill is {distill!r}; "
                        f"allowed: {list(allowed)}"
                    )
        if distill == "none" and self.binarize.distill:
            object.__setattr__(self, "binarize", replace(self.binarize, distill=False))
        if not self.binarize.any():
            object.__setattr__(self, "binarizer", Binarizer())
        if not self.ib.points:
            object.__setattr__(self, "ib", IB())
        if not self.kd.points:
            object.__setattr__(self, "kd", KD())

    # ----------------------------------------------------------------- dictionary and id
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (lists for tuples), nested by group."""
        out: dict[str, Any] = {}
        for group in _GROUPS:
            part = getattr(self, group)
            out[group] = {f.name: _plain(getattr(part, f.name)) for f in fields(part)}
        out["width"] = self.width
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Architecture":
        """Parse and validate the dictionary form; missing fields take their defaults.

        Raises:
            ConfigError: on an unknown field, a wrong type or a value outside its choices.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"architecture: expected a mapping of {list(_GROUPS) + ['width']}, got {type(data).__name__}")
        unknown = [k for k in data if k not in _GROUPS and k != "width"]
        if unknown:
            raise ConfigError(f"unknown field {unknown[0]!r}; allowed: {list(_GROUPS) + ['width']}")
        kwargs: dict[str, Any] = {}
        for group, group_cls in _GROUPS.items():
            if group not in data:
                continue
            part = data[group]
            names = [f.name for f in fields(group_cls)]
            if not isinstance(part, Mapping):
                raise ConfigError(f"{group}: expected a mapping with fields {names}, got {part!r}")
            for key in part:
                if key not in names:
                    raise ConfigError(f"unknown field '{group}.{key}'; allowed: {[f'{group}.{n}' for n in names]}")
            kwargs[group] = group_cls(**{k: check_field(f"{group}.{k}", v) for k, v in part.items()})
        if "width" in data:
            kwargs["width"] = data["width"]
        return cls(**kwargs)

    def to_flat(self) -> dict[str, Any]:
        """Every flat dimension's value (see :func:`dimension_names`), inactive ones included."""
        return flatten(self.to_dict())

    @classmethod
    def from_flat(cls, params: Mapping[str, Any]) -> "Architecture":
        """The inverse of :meth:`to_flat`; a missing dimension takes its default (a flag: off).

        Raises:
            ConfigError: an unknown dimension or a bad value, naming it.
        """
        nested: dict[str, Any] = {}
        for key, value in params.items():
            dim = _flat_dimension(key)
            value = check_dimension(key, value)
            group, _, name = dim.path.partition(".")
            if not name:
                nested[group] = value
                continue
            part = nested.setdefault(group, {})
            if dim.kind == "value":
                part[name] = value
            elif dim.kind == "flag":
                part.setdefault(name, [False] * len(dim.members))[dim.members.index(dim.member)] = value
            elif value:
                part.setdefault(name, []).append(dim.member)
        return cls.from_dict(nested)

    def to_json(self) -> str:
        """The canonical JSON: sorted keys, no spaces (what :attr:`id` hashes)."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @cached_property
    def id(self) -> str:
        """A stable 10-hex-digit id: the SHA-256 of :meth:`to_json` (independent of the Python run).

        Computed once per object (the architecture is frozen): samplers look ids up by the thousand."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:10]

    # ----------------------------------------------------------------- convenience
    def binarized(self, module: str) -> bool:
        """Whether ``module`` (``stage1``-``stage4``, ``neck``, ``decoders``, ``distill``, ``heads``) is binary."""
        if module.startswith("stage"):
            return self.binarize.stages[int(module[5:]) - 1]
        return bool(getattr(self.binarize, module))

    def with_changes(self, **paths: Any) -> "Architecture":
        """A copy with dotted fields replaced, e.g. ``arch.with_changes(**{"decoder.sharing": "shared"})``."""
        data = self.to_dict()
        for path, value in paths.items():
            group, _, name = path.partition(".")
            if name:
                data.setdefault(group, {})[name] = _plain(value)
            else:
                data[group] = value
        return Architecture.from_dict(data)


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    return value


# --------------------------------------------------------------------------------------- files
def load_architecture(path: str | os.PathLike[str]) -> Architecture:
    """Read an architecture from a ``.json``, ``.yaml`` or ``.yml`` file (YAML via ``yaml.safe_load``).

    Raises:
        ConfigError: the file is missing, unreadable, not JSON/YAML, or not a valid architecture.
    """
    from nas.results import read_user_text

    path = Path(path)
    text = read_user_text(path, "architecture file")
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as error:  # json.JSONDecodeError, yaml.YAMLError
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.') or 'JSON'}: {first}") from None
    try:
        return Architecture.from_dict(data)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def save_architecture(arch: Architecture, path: str | os.PathLike[str]) -> Path:
    """Write ``arch`` as JSON (or YAML for ``.yaml``/``.yml``) atomically (temp file + ``os.replace``)."""
    path = Path(path)
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        text = yaml.safe_dump(arch.to_dict(), sort_keys=False)
    else:
        text = json.dumps(arch.to_dict(), indent=2) + "\n"

    return atomic_write_text(path, text)
