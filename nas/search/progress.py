"""The one line every backend prints after a trial: its outcome, the study's count, best Δm, front size."""

from __future__ import annotations

from typing import Any, Sequence

import optuna

from nas.search.repeats import REPEAT_ATTR, study_frame

__all__ = ["FINISHED", "progress_line"]

#: States that count as finished towards ``--trials`` (a trial stopped at a rung used its budget).
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def progress_line(study: optuna.Study, trial: optuna.trial.FrozenTrial, target: int | None, objectives: Sequence[Any]) -> str:
    """``[done/target] trial N label: outcome | best Δm  front size`` (an architecture trained more
    than once counts with its mean)."""
    from analysis.pareto import front_candidates, front_members

    trials = study.get_trials(deepcopy=False)  # one read of the storage per trial, not two
    done = sum(t.state in FINISHED for t in trials)
    label = trial.user_attrs.get("preset") or trial.user_attrs.get("arch_id", "")
    counter = f"[{done}/{target}]" if target else f"[{done}]"
    frame = study_frame(trials, objectives)
    means = front_candidates(frame, objectives, feasible_only=False)
    best = float(means["delta_m"].max()) if len(means) else float("nan")
    front = len(front_members(frame, objectives)) if len(frame) else 0
    return f"{counter} trial {trial.number} {label}: {_outcome(trial, objectives)} | best Δm {best:.2f}  front {front}"


def _outcome(trial: optuna.trial.FrozenTrial, objectives: Sequence[Any]) -> str:
    from nas.training.prior import below_prior_note

    attrs = trial.user_attrs
    if trial.state == optuna.trial.TrialState.COMPLETE:
        result = "  ".join(f"{o.name} {v:.4g}" for o, v in zip(objectives, trial.values))
        extra = f" (same architecture as trial {attrs['duplicate_of']})" if "duplicate_of" in attrs else ""
        extra += f" (repeat {attrs[REPEAT_ATTR]}, seed {attrs.get('seed')})" if attrs.get(REPEAT_ATTR) else ""
        return f"{result}  {attrs.get('seconds', 0.0):.1f}s{extra}{below_prior_note(attrs)}"
    if trial.state == optuna.trial.TrialState.PRUNED and "pruned_at_step" in attrs:
        step = attrs["pruned_at_step"]
        dm = next((r["delta_m"] for r in attrs.get("rungs", []) if r["step"] == step), float("nan"))
        return f"pruned at step {step} (Δm there {dm:.4g})  {attrs.get('seconds', 0.0):.1f}s"
    return f"{trial.state.name}: {attrs.get('fail_reason', '')}"
