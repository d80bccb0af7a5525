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
import time
import warnings
from pathlib import Path
from typing import Callable

import optuna

from nas.errors import ConfigError

__all__ = ["HEARTBEAT_INTERVAL", "WORKER_ATTR", "check_storage_url", "fail_dead_local_trials", "open_storage", "storage_file",
           "this_worker"]

#: Seconds between heartbeats of a running trial (RDB storages); a trial is stale after 3 beats.
HEARTBEAT_INTERVAL = int(os.environ.get("BIMTDP_HEARTBEAT", "10"))
#: Trial user attribute naming the process that runs it: ``host:pid``.
WORKER_ATTR = "worker"
_JOURNAL_SUFFIXES = (".log", ".journal")
#: What SQLite says when another process is creating the same new database's tables.
_CREATION_RACE = ("already exists", "UNIQUE constraint failed: alembic_version", "database is locked")


def this_worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _check_parent(path: Path, url: str, *, create_parent: bool) -> None:
    if path.exists() and path.is_dir():
        raise ConfigError(f"storage {url!r}: {path} is a directory, expected a file")
    if not path.parent.exists() and not create_parent:
        raise ConfigError(f"storage {url!r}: folder {path.parent} does not exist")


def storage_file(url: str) -> Path | None:
    """The file behind a SQLite or journal URL (``None`` for a database server)."""
    if url.startswith("journal://") or url.endswith(_JOURNAL_SUFFIXES):
        return Path("/" + url.removeprefix("journal://").lstrip("/")) if url.startswith("journal://") else Path(url)
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///").split("?", 1)[0])
    return None


def check_storage_url(url: str, *, create_parent: bool = False) -> Path | None:
    """Refuse a malformed URL or a file path that cannot be used (ConfigError); no side effects.

    Returns the file behind a SQLite or journal URL (None for a database server).
    """
    if url.startswith("journal://") and not url.startswith("journal:///"):
        # journal://relative would be a file in the current folder: refused, as sqlite://rel.db is.
        raise ConfigError(f"storage {url!r}: write the journal file's absolute path, journal:///path/to/study.log")
    if "://" not in url and not url.endswith(_JOURNAL_SUFFIXES):
        raise ConfigError(
            f"storage {url!r} is not a URL: use sqlite:///path.db, postgresql://..., mysql://... "
            "or journal:///path/study.log"
        )
    path = storage_file(url)
    if path is not None and str(path) in ("", ".", "/"):
        raise ConfigError(f"storage {url!r}: no file path (use journal:///path/to/study.log or sqlite:///path.db)")
    if path is not None:
        _check_parent(path, url, create_parent=create_parent)
    return path


def open_storage(url: str, *, create_parent: bool = False, must_exist: bool = False) -> optuna.storages.BaseStorage:
    """Open the storage at ``url``; any problem becomes a ConfigError naming the URL.

    Args:
        url: a storage URL (see the module docstring).
        create_parent: create the folder of a file-based storage (used for the default location
            under ``results/``; a user-given path must already have its folder).
        must_exist: refuse a SQLite or journal file that does not exist instead of creating it
            (the read-only verbs: looking at a study never creates one).
    """
    path = check_storage_url(url, create_parent=create_parent)
    if must_exist and path is not None and not path.is_file():
        raise ConfigError(f"storage {url!r}: {path} does not exist")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    if url.startswith("journal://") or url.endswith(_JOURNAL_SUFFIXES):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        try:
            return JournalStorage(JournalFileBackend(str(path)))
        except Exception as error:  # noqa: BLE001 - any failure is the user's URL
            raise ConfigError(f"storage {url!r}: cannot open journal file: {error}") from None
    for attempt in range(5):
        try:
            return _rdb_storage(url)
        except Exception as error:  # noqa: BLE001 - driver missing, bad host, bad credentials, ...
            if any(text in str(error) for text in _CREATION_RACE) and attempt < 4:
                # Two processes creating a new database at once: the other one made the tables.
                time.sleep(0.2 * (attempt + 1))
                continue
            from nas.errors import disk_full

            if disk_full(error) is not None:
                raise
            message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ConfigError(f"storage {url!r}: cannot open: {message}") from None
    raise AssertionError("unreachable")


def _rdb_storage(url: str) -> optuna.storages.RDBStorage:
    with warnings.catch_warnings():  # the heartbeat is "experimental" in Optuna 5; we rely on it
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            heartbeat_interval=HEARTBEAT_INTERVAL,
            grace_period=3 * HEARTBEAT_INTERVAL,
            engine_kwargs={"pool_pre_ping": True} if not url.startswith("sqlite") else None,
        )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_dead_local_trials(study: optuna.Study, log: Callable[[str], None] | None = None) -> list[int]:
    """Fail RUNNING trials whose worker process on this machine no longer exists.

    A trial records ``host:pid`` when it starts. After a SIGKILL the heartbeat would fail it
    after its grace period; on the same host we can tell at once. Returns the trial numbers failed
    (each also said through ``log``).
    """
    from nas.search.optuna_internals import set_trial_user_attr

    host = socket.gethostname()
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker = str(trial.user_attrs.get(WORKER_ATTR, ""))
        worker_host, _, pid = worker.rpartition(":")
        if worker_host != host or not pid.isdigit():
            continue
        if int(pid) == os.getpid() or _pid_alive(int(pid)):
            continue
        try:
            set_trial_user_attr(study, trial.number, "fail_reason", f"worker process {worker} died while the trial ran")
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        except (optuna.exceptions.UpdateFinishedTrialError, ValueError, RuntimeError):
            continue  # another process got there first
        failed.append(trial.number)
        if log is not None:
            log(f"trial {trial.number} was left running by a process that died: marked failed")
    return failed
