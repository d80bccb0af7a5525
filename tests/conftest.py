"""Shared test configuration: quiet matplotlib and Ray, one torch thread per process.

One thread: the suite runs on 2-core machines that are often shared, where two torch threads per
process spin against each other (a step measured 4× slower than with one thread); subprocesses
inherit the setting through OMP_NUM_THREADS.
"""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("MPLCONFIGDIR", tempfile.mkdtemp(prefix="mpl-"))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # the tests send nothing anywhere

import torch  # noqa: E402  (after OMP_NUM_THREADS)

torch.set_num_threads(1)


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Code under test may change torch's thread count (``bimtdp train --threads``, benchmark
    scripts): every test starts with the suite's one thread again."""
    yield
    torch.set_num_threads(1)


@pytest.fixture(scope="class")
def ray_runtime():
    """A fresh local Ray runtime on loopback (2 CPUs) for one test class, always shut down."""
    pytest.importorskip("ray")
    import ray

    from nas.search.ray_backend import RayOptions, start_ray

    assert start_ray(RayOptions(num_cpus=2))
    try:
        yield
    finally:
        ray.shutdown()
