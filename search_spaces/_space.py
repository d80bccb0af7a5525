"""One search-space definition and the adapters derived from it.

A :class:`SearchSpace` is an ordered tuple of :class:`Dimension` objects. Each dimension is one
categorical choice named by the genotype field it sets (``decoder.sharing``, ``width``) or, for the
subset-valued fields, one boolean per member (``binarize.stage1`` … ``binarize.stage4``,
``ib.backbone`` … ``ib.distill``, ``kd.backbone`` … ``kd.output``). A dimension may exist only
under earlier choices (``ib.beta`` only when some IB point is on); the condition is data, not code,
so a YAML file can carry it and every adapter reads the same one.

Adapters, all reading the same dimensions: :meth:`SearchSpace.suggest` (Optuna define-by-run with
conditional parameters), :meth:`SearchSpace.param_space` (Ray Tune), :meth:`SearchSpace.sample`
(seeded random sampling), :meth:`SearchSpace.enumerate` and :meth:`SearchSpace.size` (small
spaces), :meth:`SearchSpace.validate` (is a hand-written architecture in this space?), and the
pair :meth:`SearchSpace.decode` / :meth:`SearchSpace.params_of` between flat parameters and
:class:`~nas.model.arch.Architecture`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

from nas.errors import ConfigError
from nas.model.arch import Architecture, check_dimension

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import optuna

__all__ = ["Dimension", "SearchSpace"]

#: A condition: active when ANY ``(param, values)`` pair holds (the param active and its value in values).
Condition = tuple[tuple[str, tuple[Any, ...]], ...]

@dataclass(frozen=True)
class Dimension:
    """One categorical choice of a search space.

    Attributes:
        name: the genotype field it sets (dotted), or a per-member flag (``ib.neck``).
        choices: the allowed values, in the order samplers see them.
        when: the condition under which the dimension exists; empty means always.
    """

    name: str
    choices: tuple[Any, ...]
    when: Condition = ()

    def __post_init__(self) -> None:
        if not self.choices:
            raise ConfigError(f"{self.name}: a dimension needs at least one choice")
        choices = tuple(check_dimension(self.name, c) for c in self.choices)
        if len(set(choices)) != len(choices):
            raise ConfigError(f"{self.name}: choices repeat: {list(choices)}")
        object.__setattr__(self, "choices", choices)
        object.__setattr__(self, "when", tuple((p, tuple(v)) for p, v in self.when))

    def active(self, params: Mapping[str, Any]) -> bool:
        """Whether this dimension exists given the (active) earlier parameters."""
        return not self.when or any(p in params and params[p] in values for p, values in self.when)

    def describe(self) -> str:
        cond = " or ".join(f"{p} in {list(v)}" for p, v in self.when)
        return f"{self.name}: {list(self.choices)}" + (f"  (when {cond})" if cond else "")


@dataclass(frozen=True)
class SearchSpace:
    """An ordered set of dimensions; see the module docstring for what is derived from it."""

    name: str
    dimensions: tuple[Dimension, ...]
    doc: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for dim in self.dimensions:
            if dim.name in seen:
                raise ConfigError(f"space {self.name!r}: dimension {dim.name!r} appears twice")
            for param, _ in dim.when:
                if param not in seen:
                    raise ConfigError(
                        f"space {self.name!r}: {dim.name} depends on {param!r}, which must be an earlier dimension"
                    )
            seen.add(dim.name)

    # ------------------------------------------------------------------ lookup
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.dimensions)

    def __getitem__(self, name: str) -> Dimension:
        for dim in self.dimensions:
            if dim.name == name:
                return dim
        raise ConfigError(f"space {self.name!r} has no dimension {name!r}; dimensions: {list(self.names)}")

    def describe(self) -> str:
        """One line per dimension (for ``--help`` texts and docs)."""
        return "\n".join(d.describe() for d in self.dimensions)

    # ------------------------------------------------------------------ params <-> Architecture
    def decode(self, params: Mapping[str, Any]) -> Architecture:
        """Flat parameters → Architecture. Inactive dimensions are ignored (Ray passes them all).

        Raises:
            ConfigError: an unknown parameter, a missing active one, or a value outside its choices.
        """
        unknown = [k for k in params if k not in self.names]
        if unknown:
            raise ConfigError(f"space {self.name!r}: unknown parameter {unknown[0]!r}; dimensions: {list(self.names)}")
        active: dict[str, Any] = {}
        for dim in self.dimensions:
            if not dim.active(active):
                continue
            if dim.name not in params:
                raise ConfigError(f"space {self.name!r}: parameter {dim.name!r} is missing; choose from {list(dim.choices)}")
            value = params[dim.name]
            if not _member(value, dim.choices):
                raise ConfigError(f"{dim.name}: {value!r} is not in space {self.name!r}; allowed: {list(dim.choices)}")
            active[dim.name] = value
        return Architecture.from_flat(active)

    def params_of(self, arch: Architecture) -> dict[str, Any]:
        """Architecture → the flat parameters of its active dimensions (values need not be in the choices)."""
        flat = arch.to_flat()
        params: dict[str, Any] = {}
        for dim in self.dimensions:
            if dim.active(params):
                params[dim.name] = flat[dim.name]
        return params

    def validate(self, arch: Architecture | Mapping[str, Any]) -> Architecture:
        """Check that an architecture (or its dictionary form) lies in this space and return it.

        Raises:
            ConfigError: naming the first field whose value this space does not offer, or a field
                this space cannot express at all, with the allowed values.
        """
        if not isinstance(arch, Architecture):
            arch = Architecture.from_dict(arch)
        params = self.params_of(arch)
        for dim in self.dimensions:
            if dim.name in params and not _member(params[dim.name], dim.choices):
                raise ConfigError(
                    f"{dim.name}: {params[dim.name]!r} is not in space {self.name!r}; allowed: {list(dim.choices)}"
                )
        decoded = self.decode(params)
        if decoded != arch:  # a field no dimension sets differs from its default
            fixed = decoded.to_flat()
            diff = next(p for p, v in arch.to_flat().items() if fixed[p] != v)
            raise ConfigError(f"{diff}: space {self.name!r} has no dimension for this field; it is always {fixed[diff]!r}")
        return arch

    def __contains__(self, arch: object) -> bool:
        """``arch in space``: whether :meth:`validate` accepts it."""
        if not isinstance(arch, Architecture):
            return False
        try:
            self.validate(arch)
        except ConfigError:
            return False
        return True

    def to_dict(self) -> dict[str, Any]:
        """The space's content as plain JSON-able values (a study stores it to refuse a changed space)."""
        return {
            "name": self.name,
            "dimensions": [
                {"name": d.name, "choices": list(d.choices), "when": [[p, list(v)] for p, v in d.when]}
                for d in self.dimensions
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SearchSpace":
        """The inverse of :meth:`to_dict` (every choice is checked against the genotype again)."""
        try:
            dims = tuple(
                Dimension(d["name"], tuple(d["choices"]), tuple((p, tuple(v)) for p, v in d.get("when", ())))
                for d in data["dimensions"]
            )
            return cls(str(data["name"]), dims)
        except (KeyError, TypeError, ValueError) as error:
            if isinstance(error, ConfigError):
                raise
            raise ConfigError(f"not a search space dictionary ({type(error).__name__}: {error})") from None

    # ------------------------------------------------------------------ adapters
    def suggest(self, trial: "optuna.trial.BaseTrial") -> Architecture:
        """Optuna define-by-run: suggest each active dimension as a categorical, in order."""
        params: dict[str, Any] = {}
        for dim in self.dimensions:
            if dim.active(params):
                params[dim.name] = trial.suggest_categorical(dim.name, dim.choices)
        return self.decode(params)

    def param_space(self) -> dict[str, Any]:
        """Ray Tune's ``param_space``: one ``tune.choice`` per dimension.

        Ray has no conditional parameters; every dimension is sampled and :meth:`decode` drops the
        inactive ones, so the distribution over architectures differs from Optuna's but the set of
        reachable architectures is the same. (The Ray backend asks the Optuna study instead, so
        its trials use :meth:`suggest` define-by-run like the local ones.)
        """
        from ray import tune

        return {dim.name: tune.choice(list(dim.choices)) for dim in self.dimensions}

    def sample(self, rng: "np.random.Generator") -> Architecture:
        """One architecture drawn uniformly per active dimension with the caller's generator."""
        params: dict[str, Any] = {}
        for dim in self.dimensions:
            if dim.active(params):
                params[dim.name] = dim.choices[int(rng.integers(len(dim.choices)))]
        return self.decode(params)

    def enumerate(self, *, limit: int = 10_000) -> Iterator[Architecture]:
        """Every architecture of the space, in a fixed order (depth-first over the dimensions).

        Raises:
            ConfigError: the space holds more than ``limit`` architectures.
        """
        total = self.size()
        if total > limit:
            raise ConfigError(f"space {self.name!r} holds {total:,} architectures, more than {limit:,} to enumerate")

        def walk(i: int, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
            if i == len(self.dimensions):
                yield params
                return
            dim = self.dimensions[i]
            if not dim.active(params):
                yield from walk(i + 1, params)
                return
            for choice in dim.choices:
                yield from walk(i + 1, {**params, dim.name: choice})

        for params in walk(0, {}):
            yield self.decode(params)

    def size(self) -> int:
        """The number of architectures, counted exactly without listing them.

        Dynamic programming over the dimensions: the state is the values of the earlier parameters
        that some later condition still reads, which stays small however large the space is.
        """
        dims = self.dimensions
        read_later = [
            frozenset(p for d in dims[i:] for p, _ in d.when) for i in range(len(dims) + 1)
        ]

        @lru_cache(maxsize=None)
        def count(i: int, state: tuple[tuple[str, Any], ...]) -> int:
            if i == len(dims):
                return 1
            params = dict(state)
            dim = dims[i]
            keep = read_later[i + 1]
            if not dim.active(params):
                return count(i + 1, tuple((k, v) for k, v in state if k in keep))
            total = 0
            for choice in dim.choices:
                nxt = {**params, dim.name: choice}
                total += count(i + 1, tuple(sorted((k, v) for k, v in nxt.items() if k in keep)))
            return total

        return count(0, ())

    # ------------------------------------------------------------------ deriving spaces
    def with_choices(self, choices: Mapping[str, Sequence[Any]], *, name: str | None = None, doc: str = "") -> "SearchSpace":
        """A new space with some dimensions' choices replaced (narrowed, fixed, or changed).

        Every value is checked against the genotype's domain; conditions are kept.

        Raises:
            ConfigError: an unknown dimension, an empty or repeated choice list, or a bad value.
        """
        for key in choices:
            self[key]  # raises with the list of dimensions
        dims = []
        for dim in self.dimensions:
            if dim.name in choices:
                values = choices[dim.name]
                if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
                    raise ConfigError(f"{dim.name}: expected a list of choices, got {values!r}")
                dims.append(Dimension(dim.name, tuple(values), dim.when))
            else:
                dims.append(dim)
        return SearchSpace(name or f"{self.name}*", tuple(dims), doc)


def _member(value: Any, choices: tuple[Any, ...]) -> bool:
    # bool is an int in Python: True must not match 1.0, nor 1 match True.
    return any(type(value) is type(c) and value == c for c in choices) or (
        not isinstance(value, bool) and isinstance(value, (int, float))
        and any(not isinstance(c, bool) and isinstance(c, (int, float)) and float(value) == c for c in choices)
    )
