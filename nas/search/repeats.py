"""Repeated trainings of one architecture (``--repeats K``, issue 20): which seed, which index.

One training gives a noisy Δm. With ``repeats`` K > 1 a study trains an architecture that reaches
its front K times, each a separate trial recording ``repeat`` r (0 … K−1) and trained with its own
seed (:func:`repeat_seed`) against the study's one teacher; the tables and the front then use the
mean over an architecture's repeats (:mod:`analysis.repeats`). A repeat is an ordinary trial, queued
in the storage with its architecture's parameters, so it resumes and runs on any backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["METRIC_NOISE_ATTR", "NOISE_ATTR", "REPEAT_ATTR", "SEED_STRIDE", "missing_front_repeats", "queue_front_repeats",
           "record_noise", "repeat_for", "repeat_of", "repeat_seed", "study_frame", "taken_repeats"]

#: The user attribute holding a trial's repeat index (absent: 0).
REPEAT_ATTR = "repeat"
#: The study user attribute holding its current noise estimate (``analysis.repeats.Noise.to_dict``),
#: refreshed after every trial of a study with repeats, for samplers and early stopping to read.
NOISE_ATTR = "delta_m_noise"
#: The study user attribute holding the noise of each learned task-metric objective, by column
#: (``analysis.repeats.noise_record``), refreshed with :data:`NOISE_ATTR`.
METRIC_NOISE_ATTR = "metric_noise"
#: Seeds of repeat r are ``seed + r * SEED_STRIDE``: far apart from the study seeds users pick.
SEED_STRIDE = 1000


def repeat_seed(seed: int, repeat: int) -> int:
    """The training seed of repeat ``repeat`` in a study of seed ``seed`` (repeat 0: the study's seed)."""
    return int(seed) + int(repeat) * SEED_STRIDE


def repeat_of(attrs: dict[str, Any]) -> int:
    """A trial's repeat index from its user attributes (0 for a trial of a study without repeats)."""
    return int(attrs.get(REPEAT_ATTR, 0) or 0)


def taken_repeats(trials: Any, arch_id: str, *, exclude_number: int | None = None) -> set[int]:
    """The repeat indices of ``arch_id`` that a trial holds: finished, running or queued (a queued
    repeat carries ``arch_id`` in its attributes); copies of a twin (``duplicate_of``) hold none."""
    import optuna

    live = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING,
            optuna.trial.TrialState.PRUNED)
    return {repeat_of(t.user_attrs) for t in trials
            if t.state in live and t.number != exclude_number and t.user_attrs.get("arch_id") == arch_id
            and "duplicate_of" not in t.user_attrs}


def study_frame(trials: Any, objectives: Any) -> "pd.DataFrame":
    """The COMPLETE trials of a study (Optuna FrozenTrials) as the few columns the analysis ranks
    architectures by: number, arch_id, repeat, feasibility, copies, Δm and the objective values. Cheap enough to
    build after every trial (the full ``trials.csv`` table flattens every attribute)."""
    import optuna
    import pandas as pd

    rows = [{"number": t.number, "state": "COMPLETE", "arch_id": t.user_attrs.get("arch_id", ""),
             REPEAT_ATTR: repeat_of(t.user_attrs),
             "feasible": bool(t.user_attrs.get("feasible", True)),
             "duplicate_of": t.user_attrs.get("duplicate_of", float("nan")),
             "delta_m": float(t.user_attrs.get("delta_m", float("nan"))),  # the noise's column, objective or not
             **{o.column: float(v) for o, v in zip(objectives, t.values)}}
            for t in trials if t.state == optuna.trial.TrialState.COMPLETE and t.values is not None]
    columns = ["number", "state", "arch_id", REPEAT_ATTR, "feasible", "duplicate_of", "delta_m"]
    return pd.DataFrame(rows, columns=list(dict.fromkeys([*columns, *[o.column for o in objectives]])))


def record_noise(study: Any, trials: Any, objectives: Any) -> None:
    """Refresh the study's noise estimates (:data:`NOISE_ATTR`, :data:`METRIC_NOISE_ATTR`) from its
    ``trials``, for samplers and early stopping to read."""
    from analysis.repeats import noise_record, study_noise

    record = noise_record(study_noise(study_frame(trials, objectives), objectives))
    study.set_user_attr(NOISE_ATTR, record["noise"])
    study.set_user_attr(METRIC_NOISE_ATTR, record["metric_noise"])


def missing_front_repeats(trials: Any, objectives: Any, repeats: int) -> dict[str, list[int]]:
    """Per architecture on the study's current front (means over its trainings), the repeat indices
    below ``repeats`` that no trial holds yet (finished, running or queued)."""
    from analysis.pareto import front_members

    if repeats <= 1:
        return {}
    trials = list(trials)
    front = front_members(study_frame(trials, objectives), objectives)
    missing = {}
    for arch_id in front["arch_id"].astype(str):
        taken = taken_repeats(trials, arch_id)
        wanted = [r for r in range(repeats) if r not in taken]
        if arch_id and wanted:
            missing[arch_id] = wanted
    return missing


def repeat_for(trial: Any, arch_id: str, repeats: int) -> int:
    """The repeat index of a trial: the queued one, else (``repeats`` K > 1) the first index the
    architecture lacks, so that a re-proposed architecture adds a repeat instead of a copy; 0 when
    it has all K (the trial then copies a finished twin, ``TrialRunner.twin_of``)."""
    if REPEAT_ATTR in trial.user_attrs:
        return repeat_of(trial.user_attrs)
    if repeats <= 1:
        return 0
    taken = taken_repeats(trial.study.get_trials(deepcopy=False), arch_id, exclude_number=trial.number)
    return next((r for r in range(repeats) if r not in taken), 0)


def queue_front_repeats(study: Any, objectives: Any, repeats: int) -> list[str]:
    """With ``repeats`` K > 1, after a trial: queue the missing repeats of every architecture on the
    front (means over its trainings) and refresh the study's noise estimates (:func:`record_noise`).

    A queued repeat is an ordinary waiting trial with the architecture's parameters and its
    ``repeat`` index: whichever process asks next (the local loop, a worker, the Ray driver) runs
    it, and a resumed study still holds it. Returns a line per architecture queued for.
    """
    import optuna

    if repeats <= 1:
        return []
    trials = study.get_trials(deepcopy=False)
    record_noise(study, trials, objectives)
    lines = []
    for arch_id, wanted in missing_front_repeats(trials, objectives, repeats).items():
        first = min((t for t in trials if t.user_attrs.get("arch_id") == arch_id
                     and t.state == optuna.trial.TrialState.COMPLETE), key=lambda t: t.number)
        for repeat in wanted:
            attrs = {REPEAT_ATTR: repeat, "arch_id": arch_id}
            if first.user_attrs.get("outside_space"):
                study.enqueue_trial({}, user_attrs={**attrs, "preset": first.user_attrs["preset"], "outside_space": True})
            else:
                study.enqueue_trial(dict(first.params), user_attrs=attrs)
        label = first.user_attrs.get("preset") or arch_id
        lines.append(f"queued repeat(s) {', '.join(map(str, wanted))} of {label} (on the front)")
    return lines
