"""Optuna samplers by name, each built with the study's seed.

Constraints (an OPs budget) are not given to the samplers here: the objective records them with
``trial.set_constraint`` (Optuna 5), and every constraint-aware sampler reads them from the trial.
"""

from __future__ import annotations

from typing import Callable

import optuna

from nas.errors import ConfigError

__all__ = ["SAMPLERS", "make_sampler"]


def _tpe(seed: int) -> optuna.samplers.BaseSampler:
    # multivariate + group: the space is conditional, so joint densities over co-occurring
    # parameters beat independent ones.
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, n_startup_trials=8)


def _nsga2(seed: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.NSGAIISampler(seed=seed)


def _gp(seed: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.GPSampler(seed=seed, n_startup_trials=8)


def _random(seed: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed)


#: name -> factory(seed).
SAMPLERS: dict[str, Callable[[int], optuna.samplers.BaseSampler]] = {
    "tpe": _tpe,
    "nsga2": _nsga2,
    "gp": _gp,
    "random": _random,
}


def make_sampler(name: str, *, seed: int) -> optuna.samplers.BaseSampler:
    try:
        factory = SAMPLERS[name]
    except KeyError:
        raise ConfigError(f"unknown sampler {name!r}; choose one of {list(SAMPLERS)}") from None
    return factory(seed)
