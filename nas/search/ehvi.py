"""Expected hypervolume improvement when every objective but one is known exactly.

A candidate's costs ``c`` (OPs, size, ...) are exact; only its Δm is uncertain, ``Y ~ N(μ, σ²)``.
Its hypervolume improvement over a front is then a function of ``y`` alone::

    HVI(y) = ∫_{r_y}^{y} A(t) dt,   A(t) = vol([c, r_c]) − vol(∪ {[max(c, c_p), r_c] : y_p ≥ t})

``A`` is a step function that changes only at the front's Δm values ``t_1 < … < t_n``, so the
expectation is a sum of closed-form terms, ``Σ_j A_j · E[clip(Y − t_{j−1}, 0, t_j − t_{j−1})]``:
exact, no Monte Carlo. With one cost, ``A_j`` is an interval length computed for all candidates at
once; with more, it is a hypervolume of the front's costs per candidate and breakpoint.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

__all__ = ["expected_hvi"]


def _expected_excess(mean: np.ndarray, std: np.ndarray, level: np.ndarray) -> np.ndarray:
    """E[(Y − level)⁺] for Y ~ N(mean, std²), elementwise (std may be 0)."""
    std = np.maximum(std, 1e-12)
    z = (mean - level) / std
    return std * norm.pdf(z) + (mean - level) * norm.cdf(z)


def _uncovered(costs: np.ndarray, front_costs: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """For each candidate: vol([c, r]) minus the part the front's cost boxes [max(c, c_p), r] cover."""
    box = np.prod(np.clip(reference - costs, 0.0, None), axis=1)
    if not len(front_costs):
        return box
    if costs.shape[1] == 1:
        lowest = front_costs[:, 0].min()
        return np.clip(np.minimum(reference[0], np.maximum(costs[:, 0], lowest)) - costs[:, 0], 0.0, None)
    from analysis.hypervolume import hypervolume

    directions = ["minimize"] * costs.shape[1]
    covered = np.array([hypervolume(np.minimum(np.maximum(front_costs, c), reference), reference, directions)
                        for c in costs])
    return np.clip(box - covered, 0.0, None)


def expected_hvi(costs: np.ndarray, mean: np.ndarray, std: np.ndarray, front: np.ndarray,
                 reference: np.ndarray) -> np.ndarray:
    """The expected hypervolume improvement of each candidate.

    Args:
        costs: ``[m, k]`` exact costs of the candidates (minimised).
        mean, std: ``[m]`` the predicted Δm (maximised) and its standard deviation.
        front: ``[n, k + 1]`` the observed (and fantasised) points, costs first, Δm last.
        reference: ``[k + 1]`` the reference point: the worst costs, then the worst Δm.
    """
    costs, front, reference = np.atleast_2d(costs).astype(float), np.asarray(front, float), np.asarray(reference, float)
    front = front.reshape(-1, costs.shape[1] + 1)
    ref_costs, ref_y = reference[:-1], reference[-1]
    front = front[(front[:, -1] > ref_y) & np.all(front[:, :-1] < ref_costs, axis=1)]
    levels = np.unique(front[:, -1])  # ascending breakpoints t_1 < ... < t_n
    lows = np.concatenate([[ref_y], levels])
    highs = np.concatenate([levels, [np.inf]])
    total = np.zeros(len(costs))
    for low, high in zip(lows, highs):
        # Between low and high, the front points that still cover are those with y_p >= high.
        area = _uncovered(costs, front[front[:, -1] >= high, :-1], ref_costs)
        gain = _expected_excess(mean, std, low)
        if np.isfinite(high):
            gain = gain - _expected_excess(mean, std, high)
        total += area * gain
    return total
