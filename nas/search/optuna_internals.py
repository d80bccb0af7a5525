"""The one place that uses Optuna's private API, because no public call does the job.

A process that finds a trial left RUNNING by a dead worker must fail it *with its reason*; Optuna's
public API tells a trial by number (``study.tell(number, state=FAIL)``) but sets an attribute only
through a live ``Trial`` of the process that asked for it. The same holds for a sampler, which sees
the trial it samples for as a ``FrozenTrial`` (``ehvi`` marks a re-proposed stopped architecture
with ``retrain_of``). This module reaches the storage for that one call. ``tests/test_storage.py`` checks it against the installed Optuna on SQLite and journal
storages, and pyproject.toml caps Optuna below its next major version.
"""

from __future__ import annotations

from typing import Any

import optuna

__all__ = ["set_trial_user_attr"]


def set_trial_user_attr(study: optuna.Study, number: int, key: str, value: Any) -> None:
    """Set user attribute ``key`` of trial ``number`` of ``study`` (a trial in any state but finished)."""
    storage = study._storage  # noqa: SLF001 - the isolated private use, see the module docstring
    trial_id = storage.get_trial_id_from_study_id_trial_number(study._study_id, number)  # noqa: SLF001
    storage.set_trial_user_attr(trial_id, key, value)
