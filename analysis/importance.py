"""Which search-space choices matter for each objective (Optuna's parameter importances).

Optuna 5's default evaluator is PED-ANOVA, which ranks parameters by how differently they are
distributed among the best trials; with an explicit ``target`` it always treats *low* values as
good, so maximised objectives are negated here. Importances are a statistical estimate and need a
handful of completed trials: with too few, this module returns nothing rather than equal
importances that look like a finding.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    import optuna

__all__ = ["MIN_TRIALS_FOR_IMPORTANCE", "compute_importances", "importance_table"]

#: Completed trials needed before importances mean anything (PED-ANOVA compares a top quantile of
#: trials with the rest; below this the "top" is one or two trials).
MIN_TRIALS_FOR_IMPORTANCE = 8


def compute_importances(
    study: optuna.Study,
    objective_names: Sequence[str],
    *,
    min_trials: int = MIN_TRIALS_FOR_IMPORTANCE,
    evaluator: optuna.importance.BaseImportanceEvaluator | None = None,
) -> dict[str, dict[str, float]]:
    """Parameter importances for each objective, normalised to sum to 1 per objective.

    Args:
        study: the search's study (objective ``i`` is ``trial.values[i]``).
        objective_names: a name for each of the study's objectives, in order.
        min_trials: completed trials with finite values needed; fewer gives ``{}``.
        evaluator: an Optuna importance evaluator; Optuna's default (PED-ANOVA) when ``None``.

    Returns:
        ``{objective name: {parameter: importance}}``, most important first. An objective whose
        importances cannot be computed (too few distinct trials, no parameters, all zero) is left
        out; ``{}`` when none can be.

    Raises:
        ValueError: the number of names differs from the study's number of objectives.
    """
    import optuna  # imported here: analysing a trials table never needs it
    from optuna.study import StudyDirection
    from optuna.trial import TrialState

    directions = study.directions
    if len(objective_names) != len(directions):
        raise ValueError(f"{len(objective_names)} objective name(s) for a study with {len(directions)} objective(s)")
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    usable = [t for t in complete if t.values is not None and all(math.isfinite(v) for v in t.values)]
    if len(usable) < max(min_trials, 2):
        return {}
    result: dict[str, dict[str, float]] = {}
    for i, (name, direction) in enumerate(zip(objective_names, directions)):
        sign = -1.0 if direction == StudyDirection.MAXIMIZE else 1.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "computes importances of low target values": handled by sign
            try:
                raw = optuna.importance.get_param_importances(
                    study,
                    evaluator=evaluator,
                    target=lambda trial, i=i, sign=sign: sign * trial.values[i],
                    normalize=False,
                )
            except (ValueError, RuntimeError, ZeroDivisionError):
                continue
        total = sum(v for v in raw.values() if math.isfinite(v))
        if total <= 0.0:
            continue
        ranked = sorted(((k, v / total) for k, v in raw.items() if math.isfinite(v)), key=lambda kv: -kv[1])
        result[name] = dict(ranked)
    return result


def importance_table(importances: dict[str, dict[str, float]]) -> pd.DataFrame:
    """Importances as a parameters × objectives table, most important (on average) first.

    A parameter missing for an objective counts as 0 there, so bars line up across objectives.
    """
    table = pd.DataFrame(importances, dtype=float).fillna(0.0)
    if table.empty:
        return table
    order = table.mean(axis=1).sort_values(ascending=False, kind="stable").index
    return table.loc[order]
