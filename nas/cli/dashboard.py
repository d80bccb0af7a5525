"""Browse a study in optuna-dashboard, served on this machine only (127.0.0.1), until Ctrl-C.

optuna-dashboard is an optional extra: pip install 'bimtdp-nas[dashboard]'. It reads the study's
own storage (the SQLite file under results/<study>/, or --storage), so a running search shows up
as it goes. There the objectives carry their names (delta_m, ops, ...), the parameters their
dimension names (binarize.neck, ib.beta, ...), and each trial's attributes what trials.csv holds:
costs, per-task metrics, fidelity, seed, fail reason. Two differences from pareto.csv: the
dashboard's front ignores the constraints (budgets, floors) and keeps every trial of an architecture
evaluated twice; pareto.csv has feasible trials only, one per architecture.

examples:
  bimtdp dashboard --study demo                 # prints http://127.0.0.1:8080/dashboard/studies/1
  bimtdp dashboard --study demo --port 0        # any free port
  bimtdp dashboard --study big --storage journal:///mnt/shared/big.log
"""

from __future__ import annotations

import argparse
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from nas.cli._options import add_results_dir, add_study

__all__ = ["EXTRA_HINT", "HOST", "add_arguments", "run"]

HOST = "127.0.0.1"
EXTRA_HINT = "pip install 'bimtdp-nas[dashboard]'"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_study(parser)
    add_results_dir(parser)
    parser.add_argument("--port", type=int, default=8080, metavar="P",
                        help="port on 127.0.0.1 (default: 8080; 0: any free port)")


class _Server(ThreadingMixIn, WSGIServer):
    """The page loads several API calls at once; one thread each (as optuna-dashboard's own server)."""

    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """No line per request: the terminal keeps the URL."""


def run(args: argparse.Namespace) -> int:
    from nas.errors import ConfigError
    from nas.search.study_open import load_existing, storage_url
    from nas.search.storage import open_storage

    try:
        import optuna_dashboard
    except ImportError:
        raise ConfigError(f"the dashboard needs optuna-dashboard, an optional extra: {EXTRA_HINT}") from None
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be 0..65535, got {args.port}")
    study, _, _ = load_existing(args.study, storage=args.storage, results_dir=args.results_dir)
    storage = open_storage(storage_url(args.study, args.storage, args.results_dir), must_exist=True)
    app = optuna_dashboard.wsgi(storage)
    try:
        server = make_server(HOST, args.port, app, server_class=_Server, handler_class=_QuietHandler)
    except OSError as error:
        raise ConfigError(f"cannot listen on {HOST}:{args.port} ({error.strerror or error}); choose another --port") from None
    study_id = storage.get_study_id_from_name(study.study_name)
    print(f"optuna-dashboard for study {study.study_name!r}: http://{HOST}:{server.server_port}/dashboard/studies/"
          f"{study_id}  (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
