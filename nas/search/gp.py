"""A small Gaussian process for Δm over encoded architectures.

The kernel is a Matérn-5/2 with one length scale per feature (ARD) plus a linear kernel on the
centred features, ``σ_s² k_ν(x, z) + σ_l² (x − ½)·(z − ½)``, with a noise variance; all fitted by
maximising the log marginal likelihood (torch's L-BFGS, autograd). The linear part is there because
Δm is close to additive in an architecture's choices (a linear model of the encoding explains 93 %
of Δm's variance on the stages-width table, 65 % on mini's: docs/BENCHMARKS.md), which a handful of
trials can already estimate; the Matérn part learns what is not additive. Without it, a fit to few
trials tends to explain them by length scales at their lower bound and no noise, a model under
which every untried architecture is a stranger and is predicted at the prior mean. The
targets are standardised; the prediction is the latent function's mean and standard deviation, in
the units of the targets. Two kinds of knowledge about the noise can be given: its variance when
the study measured it (``noise``: a single training's σ² from ``--repeats``, then not learned),
and an extra variance per observation (``extra``: a Δm predicted from a trial stopped early is
less certain than a measured one). A few hundred observations fit in well under a second, which is the
budget of one proposal of :class:`nas.search.cost_aware.CostAwareSampler`.

The linear algebra runs in torch (float64) on one thread: its matrices are a few hundred wide,
and numpy's multithreaded BLAS on such matrices spends its time waiting for cores when the
machine is shared (×30 slower under load on the project's 2-core machine).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

__all__ = ["GaussianProcess", "fit_gp", "neg_log_likelihood"]

_SQRT5 = 5.0 ** 0.5
#: Bounds of the log hyperparameters: length scales (features live in [0, 1]), linear and Matérn
#: signal variances, noise.
_LOG_LENGTH = (np.log(0.05), np.log(20.0))
_LOG_LINEAR = (np.log(1e-4), np.log(20.0))
_LOG_SIGNAL = (np.log(0.05), np.log(20.0))
_LOG_NOISE = (np.log(1e-4), np.log(2.0))
_JITTER = 1e-8


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread inside the block (restored after)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(array, dtype=np.float64))


def _kernel(x: torch.Tensor, z: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """The kernel matrix for ``params = [lengths..., linear variance, signal variance, noise]`` (not
    log): Matérn-5/2 (differentiable: the distance is floored above 0, where sqrt's slope is
    infinite) plus the linear kernel on the centred features."""
    lengths, linear, signal = params[:-3], params[-3], params[-2]
    a, b = x / lengths, z / lengths
    sq = ((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T).clamp_min(1e-30)
    r = sq.sqrt()
    return signal * (1.0 + _SQRT5 * r + 5.0 / 3.0 * sq) * torch.exp(-_SQRT5 * r) + linear * (x - 0.5) @ (z - 0.5).T


def _prior_variance(x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """The kernel's diagonal at ``x``: the latent function's variance before any observation."""
    return params[-2] + params[-3] * ((x - 0.5) ** 2).sum(1)


@dataclass
class GaussianProcess:
    """A fitted GP: hyperparameters, the training inputs and the factorised kernel."""

    x: np.ndarray
    y: np.ndarray  # standardised targets
    log_params: np.ndarray  # [log lengths..., log linear variance, log signal, log noise]
    offset: float = 0.0
    scale: float = 1.0
    extra: np.ndarray | None = None  # per observation: variance beyond the noise, standardised

    def __post_init__(self) -> None:
        self._params, noise = _tensor(np.exp(self.log_params)), float(np.exp(self.log_params[-1]))
        self._x = _tensor(self.x)
        self.extra = np.zeros(len(self.y)) if self.extra is None else np.asarray(self.extra, float)
        with one_thread():
            kernel = _kernel(self._x, self._x, self._params)
            kernel += (noise + _JITTER) * torch.eye(len(self.y), dtype=torch.float64) + torch.diag(_tensor(self.extra))
            self._chol = torch.linalg.cholesky(kernel)
            self._alpha = torch.cholesky_solve(_tensor(self.y)[:, None], self._chol)[:, 0]

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of the latent function at ``x``, in the targets' units."""
        with one_thread():
            at = _tensor(x)
            cross = _kernel(self._x, at, self._params)
            mean = (cross.T @ self._alpha).numpy()
            v = torch.linalg.solve_triangular(self._chol, cross, upper=False)
            var = (_prior_variance(at, self._params) - (v * v).sum(0)).clamp_min(1e-12).numpy()
        return self.offset + self.scale * mean, self.scale * np.sqrt(var)

    def conditioned(self, x: np.ndarray, y: np.ndarray) -> "GaussianProcess":
        """The same hyperparameters with more (e.g. fantasised) observations, in the targets' units."""
        if not len(x):
            return self
        more = (np.asarray(y, float) - self.offset) / self.scale
        return GaussianProcess(np.vstack([self.x, x]), np.concatenate([self.y, more]), self.log_params,
                               self.offset, self.scale, np.concatenate([self.extra, np.zeros(len(more))]))


def neg_log_likelihood(log_params: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                       extra: torch.Tensor | None = None) -> torch.Tensor:
    """The negative log marginal likelihood of standardised targets ``y`` (differentiable in torch);
    ``extra``: each observation's variance beyond the noise."""
    p = log_params.exp()
    kernel = _kernel(x, x, p) + (p[-1] + _JITTER) * torch.eye(len(y), dtype=torch.float64)
    if extra is not None:
        kernel = kernel + torch.diag(extra)
    chol = torch.linalg.cholesky(kernel)
    alpha = torch.cholesky_solve(y[:, None], chol)[:, 0]
    return 0.5 * y @ alpha + torch.log(torch.diagonal(chol)).sum() + 0.5 * len(y) * np.log(2 * np.pi)


def fit_gp(x: np.ndarray, y: np.ndarray, *, noise: float | None = None, extra: np.ndarray | None = None) -> GaussianProcess:
    """Fit the hyperparameters to ``(x, y)``, from a default start; with fewer than 3 points, the
    default's hyperparameters as they are.

    Every fit starts from the default, not from the previous proposal's fit: a warm start kept the
    fit in a degenerate optimum once it had fallen into one (docs/BENCHMARKS.md).

    ``noise``: the observations' noise variance in the targets' units, when known (it is then kept,
    not fitted; within the bounds); ``extra``: per observation, a variance added to it (targets' units).

    torch's L-BFGS on unbounded variables mapped into the bounds by a sigmoid (scipy's L-BFGS-B
    calls a multithreaded BLAS that crawls on a shared machine, as above)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    offset, scale = float(y.mean()), float(y.std()) or 1.0
    target = (y - offset) / scale
    extra = None if extra is None else np.asarray(extra, float) / scale ** 2
    dims = x.shape[1]
    noise_bounds = _LOG_NOISE if noise is None else (float(np.clip(np.log(max(noise, 1e-300) / scale ** 2), *_LOG_NOISE)),) * 2
    default = np.concatenate([np.full(dims, np.log(0.5)), [0.0, 0.0, np.log(0.1) if noise is None else noise_bounds[0]]])
    if len(y) < 3:  # too few points to learn anything: the prior's hyperparameters
        return GaussianProcess(x, target, default, offset, scale, extra)
    low = _tensor([_LOG_LENGTH[0]] * dims + [_LOG_LINEAR[0], _LOG_SIGNAL[0], noise_bounds[0]])
    high = _tensor([_LOG_LENGTH[1]] * dims + [_LOG_LINEAR[1], _LOG_SIGNAL[1], noise_bounds[1]])
    share = ((_tensor(default) - low) / (high - low).clamp_min(1e-12)).clamp(1e-3, 1 - 1e-3)
    free = torch.log(share / (1 - share)).requires_grad_(True)
    inputs, targets = _tensor(x), _tensor(target)
    extras = None if extra is None else _tensor(extra)
    optimizer = torch.optim.LBFGS([free], lr=1.0, max_iter=50, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = neg_log_likelihood(low + (high - low) * torch.sigmoid(free), inputs, targets, extras)
        loss.backward()
        return loss

    with one_thread():
        try:
            optimizer.step(closure)
            fitted = (low + (high - low) * torch.sigmoid(free)).detach().numpy()
        except RuntimeError:  # a kernel that is not positive definite along the way: keep the default
            fitted = default
    fitted = np.asarray(fitted, dtype=float)
    return GaussianProcess(x, target, fitted, offset, scale, extra)
