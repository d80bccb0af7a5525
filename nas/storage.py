"""Optuna storages from a URL, validated before anything is created, and dead-worker detection.

Accepted: ``sqlite:///path.db`` and any other SQLAlchemy URL Optuna's RDBStorage takes
(``postgresql://...``, ``mysql+pymysql://...``), and ``journal:///path/to/study.log`` (or a bare
path ending in ``.log``/``.journal``) for Optuna's journal file storage, which many processes can
share on one disk. RDB storages get a heartbeat, so that a trial whose process was killed is
failed by whichever process looks next; on the same machine a dead worker is also detected at
once through its recorded pid (:func:`fail_dead_local_trials`).
"""

from __future__ import annotations

import os
import socket
import warnings
from pathlib import Path

import optuna

from nas.errors import ConfigError

__all__ = ["HEARTBEAT_INTERVAL", "WORKER_ATTR", "fail_dead_local_trials", "open_storage", "this_worker"]

#: Seconds between heartbeats of a running trial (RDB storages); a trial is stale after 3 beats.
HEARTBEAT_INTERVAL = int(os.environ.get("BIMTDP_HEARTBEAT", "10"))
#: Trial user attribute naming the process that runs it: ``host:pid``.
WORKER_ATTR = "worker"
_JOURNAL_SUFFIXES = (".log", ".journal")


def this_worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _check_parent(path: Path, url: str, *, create_parent: bool) -> None:
    if path.exists() and path.is_dir():
        raise ConfigError(f"storage {url!r}: {path} is a directory, expected a file")
    if not path.parent.exists() and not create_parent:
        raise ConfigError(f"storage {url!r}: folder {path.parent} does not exist")


def open_storage(url: str, *, create_parent: bool = False) -> optuna.storages.BaseStorage:
    """Open the storage at ``url``; any problem becomes a ConfigError naming the URL.

    Args:
        url: a storage URL (see the module docstring).
        create_parent: create the folder of a file-based storage (used for the default location
            under ``results/``; a user-given path must already have its folder).
    """
    if url.startswith("journal://") or url.endswith(_JOURNAL_SUFFIXES):
        path = Path(url.removeprefix("journal://")) if url.startswith("journal://") else Path(url)
        if str(path) in ("", "."):
            raise ConfigError(f"storage {url!r}: no journal file path (use journal:///path/to/study.log)")
        _check_parent(path, url, create_parent=create_parent)
        path.parent.mkdir(parents=True, exist_ok=True)
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        try:
            return JournalStorage(JournalFileBackend(str(path)))
        except Exception as error:  # noqa: BLE001 - any failure is the user's URL
            raise ConfigError(f"storage {url!r}: cannot open journal file: {error}") from None
    if "://" not in url:
        raise ConfigError(
            f"storage {url!r} is not a URL: use sqlite:///path.db, postgresql://..., mysql://... "
            "or journal:///path/study.log"
        )
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        _check_parent(path, url, create_parent=create_parent)
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():  # the heartbeat is "experimental" in Optuna 5; we rely on it
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url,
                heartbeat_interval=HEARTBEAT_INTERVAL,
                grace_period=3 * HEARTBEAT_INTERVAL,
                engine_kwargs={"pool_pre_ping": True} if not url.startswith("sqlite") else None,
            )
    except Exception as error:  # noqa: BLE001 - driver missing, bad host, bad credentials, ...
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"storage {url!r}: cannot open: {message}") from None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_dead_local_trials(study: optuna.Study) -> list[int]:
    """Fail RUNNING trials whose worker process on this machine no longer exists.

    A trial records ``host:pid`` when it starts. After a SIGKILL the heartbeat would fail it
    after its grace period; on the same host we can tell at once. Returns the trial numbers failed.
    """
    host = socket.gethostname()
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker = str(trial.user_attrs.get(WORKER_ATTR, ""))
        worker_host, _, pid = worker.rpartition(":")
        if worker_host != host or not pid.isdigit():
            continue
        if int(pid) == os.getpid() or _pid_alive(int(pid)):
            continue
        storage = study._storage
        storage.set_trial_user_attr(trial._trial_id, "fail_reason", f"worker process {worker} died while the trial ran")
        try:
            storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
            failed.append(trial.number)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # another process got there first
    return failed
