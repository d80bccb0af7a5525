"""Pareto ranking, hypervolume and knee point on hand-made fronts with known answers."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from synthetic_trials import synthetic_trials

from analysis import (
    DEFAULT_OBJECTIVES,
    Objective,
    default_reference,
    hypervolume,
    hypervolume_history,
    knee_point,
    non_dominated_sort,
    pareto_front,
    pareto_mask,
)

MAX_MIN = ["maximize", "minimize"]


def _as_sets(fronts: list[np.ndarray]) -> list[set[int]]:
    return [set(map(int, front)) for front in fronts]


def _dominates(a: np.ndarray, b: np.ndarray) -> bool:
    """Brute-force dominance for minimisation."""
    return bool(np.all(a <= b) and np.any(a < b))


def _grid_volume(points: np.ndarray, reference: np.ndarray) -> int:
    """Count the unit cells of an integer grid that some point dominates (minimisation)."""
    ranges = [range(int(low), int(high)) for low, high in zip(points.min(axis=0), reference)]
    count = 0
    for cell in itertools.product(*ranges):
        if any(np.all(p <= np.asarray(cell)) for p in points):
            count += 1
    return count


# ----------------------------------------------------------------------------- non-dominated sort


def test_sort_two_objectives_mixed_directions() -> None:
    # (delta_m ↑, ops ↓)
    values = np.array([[-5.0, 10.0], [-1.0, 30.0], [-10.0, 5.0], [-6.0, 12.0], [-20.0, 40.0]])
    fronts = non_dominated_sort(values, MAX_MIN)
    assert _as_sets(fronts) == [{0, 1, 2}, {3}, {4}]
    assert pareto_mask(values, MAX_MIN).tolist() == [True, True, True, False, False]


def test_direction_flip_reverses_the_ranking() -> None:
    values = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    assert _as_sets(non_dominated_sort(values, ["minimize", "minimize"])) == [{0}, {1}, {2}]
    assert _as_sets(non_dominated_sort(values, ["maximize", "maximize"])) == [{2}, {1}, {0}]
    assert _as_sets(non_dominated_sort(values, MAX_MIN)) == [{0, 1, 2}]


def test_duplicates_share_their_front() -> None:
    values = np.array([[1.0, 2.0], [1.0, 2.0], [2.0, 1.0], [2.0, 3.0], [2.0, 3.0]])
    fronts = non_dominated_sort(values, ["minimize", "minimize"])
    assert _as_sets(fronts) == [{0, 1, 2}, {3, 4}]
    # Row order does not matter.
    permutation = np.array([4, 2, 0, 3, 1])
    permuted = non_dominated_sort(values[permutation], ["minimize", "minimize"])
    assert [set(permutation[list(front)].tolist()) for front in permuted] == _as_sets(fronts)


def test_three_objectives() -> None:
    values = np.array(
        [
            [1.0, 5.0, 5.0],
            [5.0, 1.0, 5.0],
            [5.0, 5.0, 1.0],
            [2.0, 6.0, 6.0],  # dominated by 0 only
            [6.0, 6.0, 6.0],  # dominated by everything above
            [3.0, 3.0, 3.0],  # incomparable with 0..2
        ]
    )
    fronts = non_dominated_sort(values, ["minimize"] * 3)
    assert _as_sets(fronts) == [{0, 1, 2, 5}, {3}, {4}]


@pytest.mark.parametrize("seed", range(5))
def test_sort_properties_on_random_points(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 6, size=(40, 3)).astype(float)  # many ties and duplicates
    directions = ["minimize", "maximize", "minimize"]
    fronts = non_dominated_sort(values, directions)
    assert sorted(np.concatenate(fronts).tolist()) == list(range(40))
    loss = values * np.array([1.0, -1.0, 1.0])
    for k, front in enumerate(fronts):
        for i, j in itertools.product(front, front):
            assert not _dominates(loss[i], loss[j])
        if k:
            for j in front:
                assert any(_dominates(loss[i], loss[j]) for i in fronts[k - 1])


def test_sort_rejects_nan_and_bad_directions() -> None:
    with pytest.raises(ValueError, match="NaN"):
        non_dominated_sort(np.array([[1.0, np.nan]]), MAX_MIN)
    with pytest.raises(ValueError, match="direction"):
        non_dominated_sort(np.array([[1.0, 2.0]]), ["maximise", "minimize"])
    with pytest.raises(ValueError, match="do not match"):
        non_dominated_sort(np.array([[1.0, 2.0, 3.0]]), MAX_MIN)
    assert non_dominated_sort(np.empty((0, 2)), MAX_MIN) == []


# ------------------------------------------------------------------------------ trials table


def test_pareto_front_uses_complete_feasible_trials_only() -> None:
    trials = synthetic_trials()
    front = pareto_front(trials, DEFAULT_OBJECTIVES)
    assert len(front) > 2
    assert (front["state"] == "COMPLETE").all() and front["feasible"].all()
    assert front["ops"].is_monotonic_increasing  # cheapest first
    assert front["delta_m"].is_monotonic_increasing  # a 2-D front: more cost buys more accuracy
    usable = trials[(trials["state"] == "COMPLETE") & trials["feasible"]]
    for _, row in usable.iterrows():  # nothing usable dominates a front member
        better = (usable["delta_m"] >= row["delta_m"]) & (usable["ops"] <= row["ops"])
        strictly = (usable["delta_m"] > row["delta_m"]) | (usable["ops"] < row["ops"])
        assert (row.name in front.index) == (not (better & strictly).any())


def test_pareto_front_feasibility_switch() -> None:
    trials = pd.DataFrame(
        {
            "number": [0, 1, 2, 3],
            "state": ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE"],
            "delta_m": [-10.0, -1.0, np.nan, -20.0],
            "ops": [1e9, 5e9, 1e8, 2e9],
            "feasible": [True, False, True, True],
        }
    )
    assert pareto_front(trials, DEFAULT_OBJECTIVES)["number"].tolist() == [0]
    assert pareto_front(trials, DEFAULT_OBJECTIVES, feasible_only=False)["number"].tolist() == [0, 1]
    bare = trials.drop(columns=["state", "feasible"]).dropna()
    assert pareto_front(bare, DEFAULT_OBJECTIVES)["number"].tolist() == [0, 1]
    assert pareto_front(trials.iloc[:0], DEFAULT_OBJECTIVES).empty


def test_pareto_front_survives_a_csv_round_trip(tmp_path) -> None:
    trials = synthetic_trials()
    trials["feasible"] = trials["feasible"].astype(object)
    trials.loc[0, "feasible"] = None  # a gap turns the column into text in the CSV
    path = tmp_path / "trials.csv"
    trials.to_csv(path, index=False)
    loaded = pd.read_csv(path, keep_default_na=True)
    assert loaded["feasible"].dtype != bool
    expected = pareto_front(trials.assign(feasible=trials["feasible"].fillna(True).astype(bool)), DEFAULT_OBJECTIVES)
    assert pareto_front(loaded, DEFAULT_OBJECTIVES)["number"].tolist() == expected["number"].tolist()


def test_missing_objective_column_is_named() -> None:
    with pytest.raises(KeyError, match="size_bits"):
        pareto_front(synthetic_trials().drop(columns="size_bits"), [Objective("size", "size_bits", "minimize")])


# ------------------------------------------------------------------------------- hypervolume


@pytest.mark.parametrize("m", [2, 3])
@pytest.mark.parametrize("seed", range(4))
def test_hypervolume_equals_grid_count(m: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    points = rng.integers(0, 7, size=(8, m)).astype(float)
    reference = np.full(m, 8.0)
    expected = _grid_volume(points, reference)
    assert hypervolume(points, reference, ["minimize"] * m) == pytest.approx(expected)


def test_hypervolume_mixed_directions_matches_grid_count() -> None:
    points = np.array([[-3.0, 2.0], [-1.0, 1.0], [-5.0, 4.0], [-2.0, 2.0]])  # (maximize, minimize)
    reference = np.array([-6.0, 5.0])
    as_min = np.column_stack([-points[:, 0], points[:, 1]])
    expected = _grid_volume(as_min, np.array([6.0, 5.0]))
    assert hypervolume(points, reference, MAX_MIN) == pytest.approx(expected)


def test_hypervolume_four_objectives_match_grid_count() -> None:
    points = np.array([[0, 3, 2, 1], [3, 0, 1, 2], [1, 1, 3, 0], [2, 2, 0, 3], [1, 2, 2, 2]], dtype=float)
    assert hypervolume(points, np.full(4, 4.0), ["minimize"] * 4) == pytest.approx(_grid_volume(points, np.full(4, 4.0)))


def test_hypervolume_ignores_dominated_duplicate_and_outside_points() -> None:
    front = np.array([[1.0, 4.0], [2.0, 2.0], [4.0, 1.0]])
    reference = np.array([5.0, 5.0])
    base = hypervolume(front, reference, ["minimize"] * 2)
    assert base == pytest.approx(4 + 6 + 1)  # strips of the staircase
    extra = np.vstack([front, [[3.0, 3.0], [2.0, 2.0], [6.0, 0.0], [0.0, 5.0], [np.nan, 1.0]]])
    assert hypervolume(extra, reference, ["minimize"] * 2) == base
    assert hypervolume(np.empty((0, 2)), reference, ["minimize"] * 2) == 0.0
    assert hypervolume(np.array([[2.0], [3.0]]), [5.0], ["minimize"]) == 3.0
    with pytest.raises(ValueError, match="finite"):
        hypervolume(front, [np.inf, 5.0], ["minimize"] * 2)


def test_hypervolume_agrees_with_optuna() -> None:
    compute = pytest.importorskip("optuna._hypervolume").compute_hypervolume
    rng = np.random.default_rng(0)
    for m in (2, 3, 4):
        points = rng.random((25, m))
        reference = np.full(m, 1.1)
        assert hypervolume(points, reference, ["minimize"] * m) == pytest.approx(compute(points, reference))


def test_default_reference_declared_and_fallback() -> None:
    trials = synthetic_trials()
    reference = default_reference(trials, DEFAULT_OBJECTIVES)
    fp_ops = float(trials.loc[trials["preset"] == "mtdp-fp", "ops"].iloc[0])
    assert reference.tolist() == pytest.approx([-100.0, fp_ops * 1.1])
    # Without the FP preset, cost falls back to the worst observed value plus 10 % of the range.
    no_fp = trials[trials["preset"] != "mtdp-fp"]
    ops = no_fp.loc[no_fp["state"] == "COMPLETE", "ops"]
    expected = ops.max() + 0.1 * (ops.max() - ops.min())
    assert default_reference(no_fp, DEFAULT_OBJECTIVES)[1] == pytest.approx(expected)
    assert default_reference(trials, DEFAULT_OBJECTIVES, declared={"delta_m": -50.0})[0] == -50.0
    with pytest.raises(ValueError, match="no completed trial"):
        default_reference(trials.iloc[:0], [Objective("loss", "seconds", "minimize")])


def test_hypervolume_history_is_monotone_and_ends_at_the_front() -> None:
    trials = synthetic_trials()
    reference = default_reference(trials, DEFAULT_OBJECTIVES)
    shuffled = trials.sample(frac=1.0, random_state=1)
    history = hypervolume_history(shuffled, DEFAULT_OBJECTIVES, reference)
    assert history["number"].tolist() == sorted(trials["number"].tolist())
    assert history["hypervolume"].is_monotonic_increasing
    front = pareto_front(trials, DEFAULT_OBJECTIVES)
    expected = hypervolume(front[["delta_m", "ops"]].to_numpy(), reference, MAX_MIN)
    assert history["hypervolume"].iloc[-1] == pytest.approx(expected)
    assert history["front_size"].iloc[-1] == len(front)
    failed = trials.loc[trials["state"] == "FAIL", "number"]
    for number in failed:  # a failure never moves the curve
        before = history.loc[history["number"] == number - 1, "hypervolume"]
        now = history.loc[history["number"] == number, "hypervolume"]
        assert before.to_numpy() == pytest.approx(now.to_numpy())
    with pytest.raises(ValueError, match="reference"):
        hypervolume_history(trials, DEFAULT_OBJECTIVES, [0.0])


# ------------------------------------------------------------------------------------- knee


def _front(points: list[tuple[float, float]]) -> pd.DataFrame:
    return pd.DataFrame({"number": range(len(points)), "ops": [p[0] for p in points], "delta_m": [p[1] for p in points]})


def test_knee_is_the_bend_of_a_convex_front() -> None:
    front = _front([(1e9, -30.0), (2e9, -5.0), (1e10, 0.0), (5e9, -3.0)])
    knee = knee_point(front, DEFAULT_OBJECTIVES)
    assert knee["number"] == 1
    # Invariant to units: counting in kOPs or Δm fractions picks the same member.
    scaled = front.assign(ops=front["ops"] / 1e3, delta_m=front["delta_m"] / 100)
    assert knee_point(scaled, DEFAULT_OBJECTIVES)["number"] == 1


def test_knee_small_fronts_and_ties_prefer_the_cheaper_member() -> None:
    assert knee_point(_front([(3e9, -2.0)]), DEFAULT_OBJECTIVES)["number"] == 0
    assert knee_point(_front([(3e9, -2.0), (1e9, -9.0)]), DEFAULT_OBJECTIVES)["number"] == 1
    # Dominated rows are ignored.
    assert knee_point(_front([(1e9, -30.0), (2e9, -5.0), (1e10, 0.0), (3e9, -40.0)]), DEFAULT_OBJECTIVES)["number"] == 1


def test_knee_needs_two_objectives_and_a_front() -> None:
    with pytest.raises(ValueError, match="two objectives"):
        knee_point(synthetic_trials(), DEFAULT_OBJECTIVES[:1])
    with pytest.raises(ValueError, match="empty"):
        knee_point(_front([]), DEFAULT_OBJECTIVES)
