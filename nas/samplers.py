"""Optuna samplers by name, each built with the study's seed and its constraints."""

from __future__ import annotations

from typing import Callable, Sequence

import optuna
from optuna.trial import FrozenTrial

from nas.errors import ConfigError

__all__ = ["SAMPLERS", "make_sampler"]

ConstraintsFunc = Callable[[FrozenTrial], Sequence[float]] | None


def _tpe(seed: int, constraints: ConstraintsFunc) -> optuna.samplers.BaseSampler:
    # multivariate + group: the space is conditional, so joint densities over co-occurring
    # parameters beat independent ones.
    return optuna.samplers.TPESampler(
        seed=seed, constraints_func=constraints, multivariate=True, group=True, n_startup_trials=8
    )


def _nsga2(seed: int, constraints: ConstraintsFunc) -> optuna.samplers.BaseSampler:
    return optuna.samplers.NSGAIISampler(seed=seed, constraints_func=constraints)


def _gp(seed: int, constraints: ConstraintsFunc) -> optuna.samplers.BaseSampler:
    return optuna.samplers.GPSampler(seed=seed, constraints_func=constraints, n_startup_trials=8)


def _random(seed: int, constraints: ConstraintsFunc) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed)  # constraints are recorded by the objective


#: name -> factory(seed, constraints_func). ``random`` ignores constraints while sampling.
SAMPLERS: dict[str, Callable[[int, ConstraintsFunc], optuna.samplers.BaseSampler]] = {
    "tpe": _tpe,
    "nsga2": _nsga2,
    "gp": _gp,
    "random": _random,
}


def make_sampler(name: str, *, seed: int, constraints: ConstraintsFunc = None) -> optuna.samplers.BaseSampler:
    try:
        factory = SAMPLERS[name]
    except KeyError:
        raise ConfigError(f"unknown sampler {name!r}; choose one of {list(SAMPLERS)}") from None
    return factory(seed, constraints)
