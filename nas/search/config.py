"""A search's configuration: every field that defines a study, validated as a whole before anything
touches the disk.

The study lives in an Optuna storage (SQLite under ``results/<study>/`` unless ``storage`` says
otherwise) together with the configuration that created it, so that re-running the same command
resumes it and a conflicting one is refused (:mod:`nas.search.study_open`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from functools import cached_property
from pathlib import Path
from typing import Any

from nas.errors import ConfigError
from nas.results import study_dir
from nas.search.early_stopping import parse_early_stopping
from nas.search.samplers import DEFAULT_SAMPLER, SAMPLERS, make_sampler
from nas.search.storage import check_storage_url
from nas.search.study_objectives import parse_objectives
from nas.search.study_open import BUDGET_FIELD, IDENTITY_FIELDS, storage_url

__all__ = ["SearchConfig"]


@dataclass(frozen=True)
class SearchConfig:
    """Everything that defines a search (the per-run ``--trials``/``--timeout`` are not part of it)."""

    study: str
    space: str = "bimtdp"
    dataset: str = "synth"
    data_root: str | None = None
    fidelity: str = "proxy"
    sampler: str = DEFAULT_SAMPLER
    objectives: tuple[str, ...] = ("delta_m", "ops")
    max_ops: float | None = None
    #: a latency budget in ms (packed network, batch 1): a trial over it is refused before training
    max_latency: float | None = None
    seed: int = 0
    presets: bool = True
    storage: str | None = None
    results_dir: str | None = None
    #: ``None`` (train every trial fully) or a rule such as ``sh:eta=2,rungs=2`` (nas.search.early_stopping).
    #: Stored with the study like the sampler (``bimtdp worker`` applies it), not part of its identity.
    early_stopping: str | None = None
    #: torch's CPU threads per trial, the same on every backend: Δm depends on it (float sums).
    #: Stored with the study; every trial records it (``torch_threads``), with its seed and device.
    threads: int = 1
    #: bounds such as ``depth.rmse<=0.62`` (nas.search.study_constraints): part of the study's identity
    constraints: tuple[str, ...] = ()
    #: floors relative to the FP teacher such as ``depth=-5%``: part of the study's identity
    task_floors: tuple[str, ...] = ()
    #: earlier studies whose feasible front (or top ``warm_start_top``) a new study queues first (nas.search.warm_start)
    warm_start: tuple[str, ...] = ()
    warm_start_top: int | None = None
    #: trainings (seeds) of an architecture on the front (issue 20, nas.search.repeats); 1: one training
    #: each. Stored with the study and compared on resume, like ``threads``.
    repeats: int = 1

    @property
    def directory(self) -> Path:
        return study_dir(self.study, self.results_dir)

    @property
    def measures_latency(self) -> bool:
        """Whether trials measure their packed latency (an objective or a budget asks for it)."""
        return "latency" in self.objectives or self.max_latency is not None

    def constraint_values(self, attrs: dict[str, Any]) -> dict[str, float]:
        """The budgets, bounds and task floors as Optuna constraints (feasible when <= 0), from what a
        trial has recorded so far: one not known yet (a metric before training) is left out."""
        budgets = {"max_ops": ("ops", self.max_ops), "max_latency": ("latency", self.max_latency)}
        values = {name: float(attrs[column]) - limit for name, (column, limit) in budgets.items()
                  if limit is not None and column in attrs}
        for rule in self._rules:
            violation = rule.violation(attrs)
            if violation is not None:
                values[rule.name] = violation
        return values

    @cached_property
    def _rules(self) -> tuple[Any, ...]:
        from nas.search.study_constraints import parse_bounds, parse_floors

        return (*parse_bounds(self.constraints), *parse_floors(self.task_floors))

    @property
    def storage_url(self) -> str:
        return storage_url(self.study, self.storage, self.results_dir)

    def identity(self) -> dict[str, Any]:
        """The fields a resumed study must agree on (the space by its content, not its name)."""
        from nas.training.fidelity import get_fidelity
        from search_spaces import load_space

        values = {name: getattr(self, name) for name in IDENTITY_FIELDS}
        values["objectives"] = list(self.objectives)
        values["constraints"] = list(self.constraints)
        values["task_floors"] = list(self.task_floors)
        values["space"] = load_space(self.space).to_dict()
        # The budget behind the fidelity's name too: a named budget can be retuned between releases.
        values[BUDGET_FIELD] = get_fidelity(self.fidelity).to_dict()
        return values

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for name in ("objectives", "constraints", "task_floors", "warm_start"):
            data[name] = list(data[name])
        return data

    def validated(self) -> "SearchConfig":
        """Check every field (no side effects); return a canonical copy or raise ConfigError."""
        from nas.data import dataset_meta
        from nas.search.study_constraints import parse_bounds, parse_floors
        from nas.search.warm_start import parse_warm_starts
        from nas.training.fidelity import get_fidelity
        from search_spaces import load_space

        study_dir(self.study, self.results_dir)  # validates the name
        load_space(self.space)
        if not dataset_meta(self.dataset).generated and not self.data_root:
            raise ConfigError(f"dataset {self.dataset!r} needs --data-root (the folder holding its files)")
        if self.data_root and not Path(self.data_root).is_dir():
            raise ConfigError(f"data root {self.data_root!r} is not a folder")
        get_fidelity(self.fidelity)
        if self.storage is not None:
            check_storage_url(self.storage)
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"unknown sampler {self.sampler!r}; choose one of {list(SAMPLERS)}")
        tasks = dataset_meta(self.dataset).task_names
        objectives = tuple(o.name for o in parse_objectives(list(self.objectives), tasks=tasks))
        bounds = tuple(b.name for b in parse_bounds(_texts(self.constraints, "constraints"), tasks=tasks))
        floors = tuple(f.name for f in parse_floors(_texts(self.task_floors, "task_floors"), tasks=tasks))
        warm = tuple(source.text for source in parse_warm_starts(_texts(self.warm_start, "warm_start"), self.results_dir))
        if self.warm_start_top is not None and not (
            isinstance(self.warm_start_top, int) and not isinstance(self.warm_start_top, bool) and self.warm_start_top >= 1
        ):
            raise ConfigError(f"warm_start_top (--warm-start-top) must be an integer >= 1, got {self.warm_start_top!r}")
        if self.warm_start_top is not None and not warm:
            raise ConfigError("--warm-start-top needs --warm-start STUDY")
        if self.max_ops is not None and not _positive_number(self.max_ops):
            raise ConfigError(f"max_ops (--max-ops) must be a positive finite number of OPs, got {self.max_ops!r}")
        if self.max_latency is not None and not _positive_number(self.max_latency):
            raise ConfigError(f"max_latency (--max-latency) must be a positive finite number of milliseconds, "
                              f"got {self.max_latency!r}")
        for name in ("threads", "repeats"):
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
        rule = parse_early_stopping(self.early_stopping)
        canonical = SearchConfig(**{**{f.name: getattr(self, f.name) for f in fields(self)}, "objectives": objectives,
                                    "constraints": bounds, "task_floors": floors, "warm_start": warm,
                                    "early_stopping": None if rule is None else rule.spec()})
        from nas.search.cost_aware import SamplerContext

        make_sampler(self.sampler, seed=self.seed, context=SamplerContext.for_config(canonical))  # refuses what it cannot do
        return canonical


def _texts(value: Any, field: str) -> tuple[str, ...]:
    """A repeatable option's values (a tuple or list of strings; one string is one value)."""
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, (tuple, list)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{field} must be a list of strings, got {value!r}")
    return tuple(value)


def _positive_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
