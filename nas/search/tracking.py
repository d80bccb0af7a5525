"""Experiment tracking in MLflow (``--mlflow [URI]``): every trial of a study as one MLflow run.

One experiment per study (named after it); one run per trial, tagged ``trial_number`` so that a
trial is logged once however often it is handed over, and a resumed search fills in the trials
logged nowhere yet (:meth:`MlflowTracker.sync`). A run holds the trial as ``trials.csv`` describes
it (:func:`nas.search.study_tables.trial_row`, one definition of the flat trial): the ``arch.<dimension>``
columns as params; Δm, the costs, the per-task ``metric.<task>.<name>``, seconds and steps as
metrics (the early-stopping rungs as the ``rung.delta_m`` history); state, fail reason, fidelity,
seed, device and the other words as tags. Exports are logged as artifacts of their trial's run.

Every backend hands a finished trial to the tracker in the same place,
:meth:`nas.search.trial_runner.TrialRunner.after_trial`: the local loop, ``bimtdp worker`` and the Ray driver
(Ray's workers never need MLflow).

MLflow is an optional extra (``pip install 'bimtdp-nas[mlflow]'``, which is mlflow-skinny). The
default store is SQLite beside the study, ``results/<study>/mlflow.db``, with its artifacts under
``results/<study>/mlartifacts``; MLflow 3 refuses new file (``./mlruns``) stores.
"""

from __future__ import annotations

import logging
import math
import numbers
from pathlib import Path
from typing import Any, Mapping

import optuna

from nas.errors import ConfigError

__all__ = ["EXTRA_HINT", "MlflowTracker", "default_uri", "open_tracker", "require_mlflow"]

#: How to get MLflow, named in the one line a missing package gives.
EXTRA_HINT = "pip install 'bimtdp-nas[mlflow]'"
#: The tag that finds a trial's run again.
TRIAL_TAG = "trial_number"
#: Numeric columns that name or count something rather than measure it: tags, not metrics.
_WORD_COLUMNS = frozenset({"number", "seed", "torch_threads", "duplicate_of", "pruned_at_step"})
_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}
_MAX_TAG = 5000  # MLflow keeps tag values up to 8000 characters


def require_mlflow() -> Any:
    """The ``mlflow`` module, or the one line that says which extra to install (exit 2)."""
    try:
        import mlflow
    except ImportError:
        raise ConfigError(f"--mlflow needs MLflow, an optional extra: {EXTRA_HINT}") from None
    for name in ("mlflow", "alembic"):  # table migrations and store notices: noise beside the trial lines
        logging.getLogger(name).setLevel(logging.WARNING)
    return mlflow


def default_uri(study_directory: str | Path) -> str:
    """The local store of a study that names none: SQLite beside ``study.db``."""
    return f"sqlite:///{Path(study_directory).resolve() / 'mlflow.db'}"


def _artifact_root(uri: str) -> str | None:
    """Artifacts of a local SQLite store sit beside it (MLflow's default is the working folder)."""
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///"):]).resolve().parent / "mlartifacts").as_uri()
    return None


def open_tracker(uri: str | None, study: str, study_directory: str | Path,
                 config: Mapping[str, Any] | None = None) -> "MlflowTracker | None":
    """The tracker ``--mlflow`` asks for: None without the option, the default store for ``--mlflow``
    alone (``uri == ""``). Raises ConfigError (one line) when MLflow is missing or the store cannot
    be opened."""
    if uri is None:
        return None
    require_mlflow()
    if not uri:
        Path(study_directory).mkdir(parents=True, exist_ok=True)
    return MlflowTracker(uri or default_uri(study_directory), study, config=config)


class MlflowTracker:
    """Logs the trials of one study to one MLflow experiment.

    Args:
        uri: the MLflow tracking URI (``sqlite:///...``, ``http://host:5000``, ...).
        study: the study's name, which is the experiment's.
        config: the study's configuration, kept as the experiment's tags.
    """

    def __init__(self, uri: str, study: str, *, config: Mapping[str, Any] | None = None) -> None:
        from mlflow.tracking import MlflowClient

        self.uri = uri
        self.study = study
        try:
            self.client = MlflowClient(tracking_uri=uri)
            self.experiment_id = self._experiment(dict(config or {}))
        except ConfigError:
            raise
        except Exception as error:  # a bad URI, an unreachable server: one line, exit 2
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise ConfigError(f"--mlflow {uri}: cannot open the store ({type(error).__name__}: {first})") from None

    def _experiment(self, config: dict[str, Any]) -> str:
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(self.study)
        if found is None:
            tags = {f"bimtdp.{k}": str(v)[:_MAX_TAG] for k, v in config.items() if v is not None}
            try:
                return self.client.create_experiment(self.study, artifact_location=_artifact_root(self.uri), tags=tags)
            except MlflowException:  # another process created it first
                found = self.client.get_experiment_by_name(self.study)
                if found is None:
                    raise
        if found.lifecycle_stage != "active":
            raise ConfigError(f"--mlflow {self.uri}: the experiment {self.study!r} is deleted; restore it in MLflow first")
        return found.experiment_id

    # ------------------------------------------------------------------ trials
    def logged(self) -> dict[int, str]:
        """Trial number -> run id of every trial this experiment holds."""
        runs: dict[int, str] = {}
        token = None
        while True:
            page = self.client.search_runs([self.experiment_id], max_results=1000, page_token=token)
            for run in page:
                number = run.data.tags.get(TRIAL_TAG)
                if number is not None:
                    runs.setdefault(int(number), run.info.run_id)
            token = page.token
            if not token:
                return runs

    def sync(self, study: optuna.Study) -> int:
        """Log every finished trial of ``study`` that the experiment lacks; return how many."""
        have = self.logged()
        missing = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished() and t.number not in have]
        for trial in missing:
            self.log_trial(trial, known=have)
        return len(missing)

    def log_trial(self, trial: optuna.trial.FrozenTrial, *, known: Mapping[int, str] | None = None) -> str:
        """Log one finished trial as a run (once: a trial already logged keeps its run); return the run id."""
        from mlflow.entities import Metric, Param, RunTag

        run_id = known.get(trial.number) if known is not None else self._run_of(trial.number)
        if run_id is not None:
            return run_id
        params, metrics, tags = run_fields(trial)
        started = _millis(trial.datetime_start) or _millis(trial.datetime_complete)
        run = self.client.create_run(self.experiment_id, start_time=started, tags={TRIAL_TAG: str(trial.number)},
                                     run_name=f"trial-{trial.number}" + (f" {tags['preset']}" if tags.get("preset") else ""))
        run_id = run.info.run_id
        now = started or 0
        self.client.log_batch(
            run_id,
            metrics=[Metric(key, value, now, step) for key, value, step in metrics],
            params=[Param(key, value) for key, value in params.items()],
            tags=[RunTag(key, value) for key, value in tags.items()],
        )
        status = _STATUS.get(trial.state.name, "FAILED")
        self.client.set_terminated(run_id, status=status, end_time=_millis(trial.datetime_complete))
        return run_id

    def _run_of(self, number: int) -> str | None:
        found = self.client.search_runs([self.experiment_id], filter_string=f"tags.{TRIAL_TAG} = '{number}'",
                                        max_results=1)
        return found[0].info.run_id if found else None

    # ------------------------------------------------------------------ exports
    def log_export(self, trial: optuna.trial.FrozenTrial, folder: str | Path) -> str:
        """Log an export folder as artifacts (``exports/<arch-id>/``) of its trial's run."""
        run_id = self.log_trial(trial)
        folder = Path(folder)
        self.client.log_artifacts(run_id, str(folder), artifact_path=f"exports/{folder.name}")
        return run_id


def run_fields(trial: optuna.trial.FrozenTrial) -> tuple[dict[str, str], list[tuple[str, float, int]], dict[str, str]]:
    """(params, metrics as (key, value, step), tags) of a trial's run, from its ``trials.csv`` row."""
    from nas.search.study_tables import ARCH_PREFIX, trial_row

    params: dict[str, str] = {}
    metrics: list[tuple[str, float, int]] = []
    tags: dict[str, str] = {}
    for key, value in trial_row(trial).items():
        if key == "arch_json":
            continue
        if key.startswith(ARCH_PREFIX):
            params[key] = str(value)
        elif _is_number(value) and key not in _WORD_COLUMNS:
            if math.isfinite(float(value)):
                metrics.append((key, float(value), 0))
        elif _present(value):
            tags[key] = str(value)[:_MAX_TAG]
    for rung in trial.user_attrs.get("rungs") or ():
        if math.isfinite(float(rung["delta_m"])):
            metrics.append(("rung.delta_m", float(rung["delta_m"]), int(rung["step"])))
    tags.pop("number", None)  # the trial_number tag says it
    return params, metrics, tags


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _present(value: Any) -> bool:
    if value is None or value == "":
        return False
    return not (isinstance(value, float) and math.isnan(value))


def _millis(moment: Any) -> int | None:
    return int(moment.timestamp() * 1000) if moment is not None else None
