"""Optuna samplers by name, each built with the study's seed and what the study knows before training.

Adding a sampler is one factory ``factory(seed, context)`` given to :func:`register_sampler`;
``context`` is a :class:`nas.search.cost_aware.SamplerContext` (the space, the objectives, exact costs,
the budgets) or None where no study defines one (samplers that need it refuse). The contract tests in
tests/test_registries.py run every registered sampler through a smoke search. Optuna is imported
inside the factories, so listing the names (``bimtdp search --help``) does not load it.

Constraints (an OPs budget) are not given to the samplers here: the objective records them with
``trial.set_constraint`` (Optuna 5), and every constraint-aware sampler reads them from the trial.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from nas.errors import ConfigError
from nas.registry import register

if TYPE_CHECKING:  # pragma: no cover
    import optuna

__all__ = ["DEFAULT_SAMPLER", "SAMPLERS", "make_sampler", "register_sampler"]

#: What ``bimtdp search`` uses for a new study when ``--sampler`` is not given (see docs/BENCHMARKS.md).
DEFAULT_SAMPLER = "ehvi"

SamplerFactory = Callable[[int, Any], "optuna.samplers.BaseSampler"]

#: name -> factory(seed) (add one with :func:`register_sampler`).
SAMPLERS: dict[str, SamplerFactory] = {}


def register_sampler(name: str) -> Callable[[SamplerFactory], SamplerFactory]:
    """Decorator adding a sampler factory ``factory(seed, context) -> BaseSampler`` to :data:`SAMPLERS`."""

    return lambda factory: register(SAMPLERS, name, factory, kind="sampler")


@register_sampler("tpe")
def _tpe(seed: int, context: Any = None) -> "optuna.samplers.BaseSampler":
    import optuna

    # multivariate + group: the space is conditional, so joint densities over co-occurring
    # parameters beat independent ones.
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, n_startup_trials=8)


@register_sampler("nsga2")
def _nsga2(seed: int, context: Any = None) -> "optuna.samplers.BaseSampler":
    import optuna

    return optuna.samplers.NSGAIISampler(seed=seed)


@register_sampler("gp")
def _gp(seed: int, context: Any = None) -> "optuna.samplers.BaseSampler":
    import optuna

    return optuna.samplers.GPSampler(seed=seed, n_startup_trials=8)


@register_sampler("random")
def _random(seed: int, context: Any = None) -> "optuna.samplers.BaseSampler":
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


@register_sampler("ehvi")
def _ehvi(seed: int, context: Any = None) -> "optuna.samplers.BaseSampler":
    from nas.search.cost_aware import CostAwareSampler

    if context is None:
        raise ConfigError("sampler 'ehvi' needs the study's space, objectives and costs (a SamplerContext)")
    context.check("ehvi")
    return CostAwareSampler(context, seed=seed)


def make_sampler(name: str, *, seed: int, context: Any = None) -> "optuna.samplers.BaseSampler":
    """The sampler called ``name``, seeded, for a study described by ``context`` (a
    :class:`nas.search.cost_aware.SamplerContext`); an unknown name is a ConfigError listing the known ones."""
    try:
        factory = SAMPLERS[name]
    except KeyError:
        raise ConfigError(f"unknown sampler {name!r}; choose one of {list(SAMPLERS)}") from None
    return factory(seed, context)
