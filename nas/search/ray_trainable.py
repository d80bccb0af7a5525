"""The Ray backend's worker side: what a Tune trial runs in a Ray worker process.

A trial gets the Architecture the driver began (``spec["arch"]``), costs and trains it through a
:class:`~nas.search.trial_runner.TrialRunner` built once per worker process (a reused Tune actor loads the
data and the teacher once), and reports the objective values with every user attribute as one JSON
string. With early stopping it also reports each rung and waits for the driver's decision. When
the study measures latency, a node whose processor is not the study's refuses every trial before
measuring or training it (the trial fails with the reason): one processor per latency objective.

The teacher reaches the workers through Ray's object store: its cache folder is written into
``<results>/teachers/<dataset>-<fidelity>-seed<N>`` on any node that lacks it, where
:meth:`nas.training.teacher.Teacher.load_or_train` finds it; it is never retrained.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from nas.search.ray_searcher import ATTRS, FAILED, RUNG, SPEC
from nas.search.trial_runner import TrialRunner, fail_reason

__all__ = ["TEACHER_FILES", "materialise_teacher", "read_teacher", "teacher_location", "trainable"]

TEACHER_FILES = ("key.json", "weights.pt", "metrics.json")
#: One runner per worker process and setup.
_RUNNERS: dict[str, TrialRunner] = {}


def teacher_location(config: Any) -> Path:
    """Where the search's FP teacher is cached (the folder every node reads it from)."""
    from nas.search.evaluator import Evaluator

    return Evaluator.for_config(config).teacher_dir


def read_teacher(directory: Path) -> dict[str, bytes]:
    """The driver's teacher cache as bytes, to travel through the object store."""
    return {name: (directory / name).read_bytes() for name in TEACHER_FILES if (directory / name).is_file()}


def materialise_teacher(files: dict[str, bytes], directory: Path) -> None:
    """Write the driver's teacher into ``directory`` unless the same one is already there."""
    key = directory / "key.json"
    if not files or (key.is_file() and key.read_bytes() == files.get("key.json")):
        return
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}-ray-", dir=directory.parent))
    for name, data in files.items():
        (tmp / name).write_bytes(data)
    old = None
    if directory.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{directory.name}-old-", dir=directory.parent))
        os.replace(directory, old / directory.name)
    try:
        os.replace(tmp, directory)
    except OSError:  # another worker on this node got there first
        pass
    for leftover in (tmp, old):
        if leftover is not None and leftover.exists():
            shutil.rmtree(leftover, ignore_errors=True)


def _runner(setup: dict[str, Any]) -> TrialRunner:
    config = setup["config"]
    cache_key = json.dumps([config.to_dict(), setup["device"]], sort_keys=True, default=str)
    if cache_key not in _RUNNERS:
        materialise_teacher(setup["teacher"], teacher_location(config))
        factory = setup.get("factory")
        evaluator = factory(config, setup["device"]) if factory is not None else None
        runner = TrialRunner(config, evaluator=evaluator, log=lambda line: None, device=setup["device"])
        runner.prepare()
        _RUNNERS.clear()
        _RUNNERS[cache_key] = runner
    return _RUNNERS[cache_key]


class ForeignProcessor(Exception):
    """This node's processor is not the one the study measures latency on."""


def _foreign_node(stored: dict[str, Any] | None) -> str | None:
    """Why this node must not measure the study's latency (another processor), or None."""
    if stored is None:
        return None
    from dataclasses import asdict

    from nas.runtime.arch_latency import this_processor
    from nas.search.study_open import processor_mismatch

    return processor_mismatch(stored, asdict(this_processor()))


def _evaluate(spec: dict[str, Any], setup: dict[str, Any]) -> dict[str, Any]:
    """One trial's work: the objective values, its user attributes (JSON) and a failure reason."""
    import optuna
    import ray

    from nas.model.arch import Architecture
    from nas.search.storage import this_worker

    names = list(setup["config"].objectives)
    attrs: dict[str, Any] = {"ray_worker": this_worker(), "ray_node": ray.get_runtime_context().get_node_id()}
    values: tuple[float, ...] = (math.nan,) * len(names)
    failed = ""
    started = time.perf_counter()
    if spec.get("twin") is None:
        try:
            runner = _runner(setup)
            foreign = _foreign_node(setup.get("processor"))
            if foreign is not None:
                raise ForeignProcessor(foreign)

            def report_rung(step: int, rung_values: tuple[float, ...]) -> None:
                # Blocks until the driver has decided; a STOP ends this thread inside tune.report.
                from ray import tune

                tune.report({**dict(zip(names, rung_values)), ATTRS: json.dumps(attrs), RUNG: step})

            on_rung = report_rung if runner.early_stopping is not None else None
            values = runner.measure(Architecture.from_dict(spec["arch"]), attrs.__setitem__, on_rung=on_rung,
                                    seed=spec.get("seed"))
        except optuna.TrialPruned:  # over the latency budget, never trained: attrs["refused"] says so
            pass
        except ForeignProcessor as error:  # neither measured nor trained here
            failed = f"refused on this Ray node: {error}"
        except Exception as error:  # noqa: BLE001 - recorded on the trial, the search goes on
            failed = fail_reason(error)
    attrs["ray_seconds"] = time.perf_counter() - started  # the driver's span minus this: Ray's overhead
    return {**dict(zip(names, values)), ATTRS: json.dumps(attrs), FAILED: failed}


def trainable(params: dict[str, Any], setup: dict[str, Any]) -> None:
    """The Tune function trainable: one trial, one final report."""
    from ray import tune

    tune.report(_evaluate(params[SPEC], setup))
