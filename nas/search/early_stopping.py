"""Multi-objective early stopping: asynchronous successive halving on non-dominated rank (MO-ASHA).

Optuna cannot prune a multi-objective trial and Ray's schedulers follow one metric, so the rule
lives here, once, free of either: :class:`SuccessiveHalving` says at which steps of a trial's
training budget it is scored ("rungs") and, given its objective values there and those of every
other trial that reached the same rung, whether it trains on. The local backend
(:meth:`nas.search.trial_runner.TrialRunner.measure`) and the Ray scheduler (:mod:`nas.search.ray_searcher`) only feed it.

Only Δm depends on training; the costs (OPs, size, params) are known before it. A trial's values at
a rung are therefore its Δm scored on the validation split after that many steps, with its costs:
a cheap network with a poor early Δm may still be on the rung's front, as it should be.

What a trial leaves behind (user attributes, the format the tabular benchmark replays):

* ``rungs``: ``[{"step": int, "delta_m": float}, ...]``, appended as each rung is scored (with
  ``"metrics": {task: {metric: value}}`` too when the study's objectives are per-task metrics);
* ``pruned_at_step``: the rung it was stopped at (state ``PRUNED``, no objective values, so it is
  on no front; its cost attributes are kept).

A trial carrying :data:`RETRAIN_ATTR` (the number of a trial of its architecture stopped at a rung)
is a sampler's decision to train that architecture to the full budget after all (``ehvi`` does so
when the stopped one's expected improvement is the highest): it is scored at the rungs but never
stopped (:meth:`nas.search.trial_runner.TrialRunner.stop_at_rung`).

:func:`rung_population` reads a rung's population back from a study's trials (any state, so
running trials on other workers and a resumed study's history count).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from analysis.pareto import non_dominated_sort
from nas.errors import ConfigError
from nas.search.study_objectives import value_of

__all__ = ["Decision", "RETRAIN_ATTR", "SuccessiveHalving", "crowding_distance", "parse_early_stopping",
           "rung_population"]

#: Rung steps are multiples of ``steps // RUNG_GRID`` (the tabular benchmark records Δm at
#: ``k * steps // 8`` for k = 1..7, so any rung this module picks can be replayed from it).
RUNG_GRID = 8
_OFF = ("", "none", "off", "no", "false")
#: The user attribute of a trial that retrains an architecture stopped early, to the full budget.
RETRAIN_ATTR = "retrain_of"


@dataclass(frozen=True)
class Decision:
    """The outcome of one rung decision, with what it was based on (for logs and tests).

    Attributes:
        continues: whether the trial trains on.
        population: trials at the rung, this one included.
        promoted: how many of them may continue (``ceil(population / eta)``, or all in grace).
        rank: this trial's non-dominated rank at the rung (0: on the rung's front).
        position: its place in the rung's order (0: best); it continues iff ``position < promoted``.
    """

    continues: bool
    population: int
    promoted: int
    rank: int
    position: int


@dataclass(frozen=True)
class SuccessiveHalving:
    """Asynchronous successive halving on non-dominated rank (à la MO-ASHA, Schmucker et al. 2021).

    Rungs: ``rungs`` steps, at ``steps / eta**k`` for k = 1..``rungs``, each rounded to the nearest
    multiple of ``steps // 8`` (at least one such multiple, below ``steps``; duplicates merged). For
    ``quick``'s 200 steps and the default ``eta=2, rungs=2``: steps 50 and 100. The final step is the
    trial's result, not a rung. A budget under 8 steps has no rungs: nothing is stopped.

    Decision at a rung, asynchronous as in ASHA (a trial is judged against whoever reached the rung
    before it, never waits for a full cohort):

    1. order the rung's population (this trial and every other trial scored at that rung) by
       non-dominated rank (:func:`analysis.pareto.non_dominated_sort`), and within a rank by
       crowding distance, largest first;
    2. the trial continues iff its position is below ``ceil(n / eta)``, ``n`` counting itself;
    3. grace: while at most ``grace`` trials (itself included) have reached the rung, it continues.

    Why crowding distance (NSGA-II) to break ties within a rank, rather than hypervolume
    contribution: it needs no reference point (the study's HV reference is anchored on the FP
    preset, which is the teacher and never reports rungs, so a rung population has no natural
    one), it is invariant to each objective's units once normalised by the rank's range (costs are
    taken in log10, the scale they are judged on), and it keeps the ends of a rank — the cheapest
    and the most accurate network — which is what preserves the front's spread along the cost axis.

    Why ``ceil`` rather than ``floor``: the trial is part of the population it is judged in, so
    ``ceil`` always lets the best one through and never promotes fewer than a fraction ``1/eta``;
    low-fidelity Δm is a noisy predictor of the final one and a stopped trial never comes back, so
    the rule leans towards continuing. Exact ties in the order go to the trial being judged, for the
    same reason.

    Attributes:
        eta: reduction factor (≥ 2): about ``1/eta`` of the trials pass each rung.
        rungs: number of rungs (≥ 1); fewer if the budget's grid cannot hold them.
        grace: the first ``grace`` trials at a rung always continue (≥ 1; default ``eta``).
    """

    eta: int = 2
    rungs: int = 2
    grace: int | None = None

    def __post_init__(self) -> None:
        for name, low in (("eta", 2), ("rungs", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"early stopping: {name} must be an integer >= {low}, got {value!r}")
        if self.grace is not None and (isinstance(self.grace, bool) or not isinstance(self.grace, int) or self.grace < 1):
            raise ConfigError(f"early stopping: grace must be an integer >= 1, got {self.grace!r}")

    @property
    def grace_count(self) -> int:
        return self.eta if self.grace is None else self.grace

    def spec(self) -> str:
        """The canonical text form (``sh:eta=2,rungs=2``), as ``--early-stopping`` takes it."""
        text = f"sh:eta={self.eta},rungs={self.rungs}"
        return text if self.grace is None else f"{text},grace={self.grace}"

    def rung_steps(self, steps: int) -> tuple[int, ...]:
        """The steps (ascending, each a multiple of ``steps // 8``, below ``steps``) a trial is scored at."""
        unit = int(steps) // RUNG_GRID
        if unit < 1:
            return ()
        found = set()
        for k in range(1, self.rungs + 1):
            multiple = max(1, round(steps / self.eta**k / unit))
            if multiple * unit < steps:
                found.add(multiple * unit)
        return tuple(sorted(found))

    def decide(
        self,
        values: Sequence[float],
        others: Iterable[Sequence[float]],
        directions: Sequence[str],
        *,
        log: Sequence[bool] | None = None,
        tolerance: Sequence[float] | None = None,
    ) -> Decision:
        """Whether a trial with objective ``values`` at a rung continues, given ``others`` there.

        Args:
            values: this trial's objective values at the rung.
            others: the values of every other trial that reached the rung (rows with a non-finite
                value are ignored).
            directions: ``maximize``/``minimize`` per objective.
            log: per objective, compare on log10 for the crowding distance (costs); default none.
            tolerance: per objective, the training noise (σ of Δm between seeds, from the study's
                repeats; 0 for costs): the trial is judged as if it were that much better, so it is
                never stopped for a difference the noise could make. None: judged as measured.

        A trial whose own values are not finite continues: its final result will say what went
        wrong (a diverged trial fails with its reason, it is not "pruned").
        """
        own = np.asarray(values, dtype=float).reshape(-1)
        if own.shape[0] != len(directions):
            raise ValueError(f"{own.shape[0]} value(s) for {len(directions)} direction(s)")
        rows = [np.asarray(o, dtype=float).reshape(-1) for o in others]
        rows = [r for r in rows if r.shape == own.shape and np.isfinite(r).all()]
        n = len(rows) + 1
        if not np.isfinite(own).all():
            return Decision(True, n, n, 0, 0)
        promoted = math.ceil(n / self.eta)
        if n <= self.grace_count:
            return Decision(True, n, n, 0, 0)
        if tolerance is not None:
            from analysis.pareto import to_minimization

            better = -to_minimization(np.asarray(tolerance, dtype=float)[None, :], directions)[0]
            own = own + np.where(np.isfinite(better), better, 0.0)
        points = np.vstack([own[None, :], *[r[None, :] for r in rows]])
        fronts = non_dominated_sort(points, directions)
        rank = next(i for i, front in enumerate(fronts) if 0 in front)
        ahead = sum(len(front) for front in fronts[:rank])
        front = fronts[rank]
        if len(front) > 1:
            distance = crowding_distance(points[front], directions, log=log)
            mine = distance[int(np.flatnonzero(front == 0)[0])]
            ahead += int((distance > mine).sum())  # ties go to this trial
        return Decision(ahead < promoted, n, promoted, rank, ahead)


def crowding_distance(points: np.ndarray, directions: Sequence[str], *, log: Sequence[bool] | None = None) -> np.ndarray:
    """NSGA-II crowding distance of each point of one front (``inf`` at each objective's ends).

    Each objective is normalised by the front's range (log10 first where ``log`` says so); an
    objective on which all points agree adds nothing.
    """
    values = np.asarray(points, dtype=float).copy()
    n, m = values.shape
    if log is not None:
        for j, flag in enumerate(log):
            if flag and (values[:, j] > 0).all():
                values[:, j] = np.log10(values[:, j])
    distance = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for j in range(m):
        order = np.argsort(values[:, j], kind="stable")
        column = values[order, j]
        span = column[-1] - column[0]
        distance[order[0]] = distance[order[-1]] = np.inf
        if span > 0:
            distance[order[1:-1]] += (column[2:] - column[:-2]) / span
    return distance


def parse_early_stopping(text: Any) -> SuccessiveHalving | None:
    """``--early-stopping`` text -> a rule, or ``None`` for off.

    Forms: ``sh`` (defaults), ``sh:eta=3``, ``sh:eta=3,rungs=2,grace=4``; ``none``/``off`` (or an
    empty value) turns it off. Anything else is a :class:`~nas.errors.ConfigError`.
    """
    if text is None or isinstance(text, SuccessiveHalving):
        return text
    raw = str(text).strip()
    if raw.lower() in _OFF:
        return None
    name, _, options = raw.partition(":")
    if name.strip().lower() not in ("sh", "asha", "successive-halving"):
        raise ConfigError(f"unknown early stopping {raw!r}: use sh, sh:eta=N,rungs=K,grace=G, or none")
    settings: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in options.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or key not in ("eta", "rungs", "grace"):
            raise ConfigError(f"early stopping {raw!r}: bad option {item!r} (known: eta=N, rungs=K, grace=G)")
        try:
            settings[key] = int(value.strip())
        except ValueError:
            raise ConfigError(f"early stopping {raw!r}: {key} must be an integer, got {value.strip()!r}") from None
    return SuccessiveHalving(**settings)


def rung_population(
    trials: Iterable[Any],
    step: int,
    objectives: Sequence[Any],
    *,
    exclude_number: int | None = None,
    exclude_arch: str | None = None,
) -> list[tuple[float, ...]]:
    """The objective values at rung ``step`` of the trials (Optuna FrozenTrials) that reached it.

    A trial's values there are the rung's Δm (and task metrics) with its recorded costs.
    Left out: the trial being judged (``exclude_number``), earlier records of its architecture
    (``exclude_arch``), copies of another trial's result (``duplicate_of``), and all but the first
    record of an architecture scored twice (a pruned architecture proposed again).
    """
    seen: set[str] = set()
    population: list[tuple[float, ...]] = []
    for trial in trials:
        attrs = trial.user_attrs
        if trial.number == exclude_number or "duplicate_of" in attrs:
            continue
        arch = attrs.get("arch_id")
        if arch is not None and (arch == exclude_arch or arch in seen):
            continue
        record = next((r for r in attrs.get("rungs") or () if int(r.get("step", -1)) == int(step)), None)
        if record is None:
            continue
        known = {**attrs, "delta_m": record.get("delta_m"), "metrics": record.get("metrics") or {}}
        row = tuple(value_of(o, known) for o in objectives)
        if any(v is None for v in row):
            continue
        if arch is not None:
            seen.add(arch)
        population.append(row)
    return population
