"""Starting a study from what earlier studies found: their feasible front, or their top K, queued
as the new study's first trials (after the paper's presets, before anything is sampled).

A source is written one of three ways (``--warm-start``, repeatable):

* ``NAME``: study NAME under the new study's results root;
* ``DIR/NAME`` (any text with a ``/``): the study folder ``DIR/NAME`` of another results root;
* ``NAME@URL``: study NAME in the Optuna storage at URL (``demo@sqlite:////data/nas.db``).

The sources are read (never written) before anything of the new study exists, so a missing source
leaves nothing behind. Architectures outside the new study's space (``mini`` fixes the width, a
YAML space restricts a choice) are skipped with one line naming them; one already queued (a preset,
or found by two sources) is queued once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import optuna

from nas.model.arch import Architecture
from nas.errors import ConfigError
from nas.results import validate_study_name
from nas.search.storage import check_storage_url

__all__ = ["WarmArchitecture", "WarmSource", "enqueue_warm_start", "parse_warm_starts", "warm_architectures"]

#: Trial user attribute naming where a warm-started trial came from: ``<source study>#<trial number>``.
WARM_ATTR = "warm_start"


@dataclass(frozen=True)
class WarmSource:
    """Where an earlier study is: its name, and its results root or storage URL."""

    text: str
    study: str
    results_dir: str | None = None
    storage: str | None = None


@dataclass(frozen=True)
class WarmArchitecture:
    """An architecture an earlier study found, and which trial found it (``demo#12``)."""

    arch: Architecture
    origin: str


def parse_warm_starts(texts: Iterable[str], results_dir: str | None) -> tuple[WarmSource, ...]:
    """The sources as given (see the module docstring); ConfigError for a malformed one. No I/O."""
    sources = []
    for text in texts:
        name, at, url = str(text).partition("@")
        if at:
            if not url:
                raise ConfigError(f"warm start {text!r}: write NAME@URL, e.g. demo@sqlite:////data/nas.db")
            check_storage_url(url)
            sources.append(WarmSource(str(text), _name(name, text), storage=url))
        elif "/" in text:
            folder = Path(text.rstrip("/"))
            sources.append(WarmSource(str(text), _name(folder.name, text), results_dir=str(folder.parent)))
        else:
            sources.append(WarmSource(str(text), _name(text, text), results_dir=results_dir))
    if len({s.text for s in sources}) != len(sources):
        raise ConfigError(f"a warm-start study is given twice: {[s.text for s in sources]}")
    return tuple(sources)


def _name(name: str, text: str) -> str:
    try:
        return validate_study_name(name)
    except ConfigError as error:
        raise ConfigError(f"warm start {text!r}: {error}") from None


def warm_architectures(source: WarmSource, *, top: int | None = None) -> list[WarmArchitecture]:
    """The source study's feasible front (``top=None``) or its ``top`` best feasible architectures
    (by non-dominated rank, cheapest first within a rank: :func:`analysis.pareto.ranked_members`),
    judged by the source's own objectives and constraints.

    Raises:
        ConfigError: the source study does not exist.
    """
    from analysis.pareto import front_members, ranked_members
    from nas.search.study_open import load_existing
    from nas.search.study_tables import trials_frame

    study, _, objectives = load_existing(source.study, storage=source.storage, results_dir=source.results_dir)
    trials = trials_frame(study)
    rows = front_members(trials, objectives) if top is None else ranked_members(trials, objectives).head(top)
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    found = []
    for number in rows["number"]:
        attrs = by_number[int(number)].user_attrs
        if "arch" in attrs:
            found.append(WarmArchitecture(Architecture.from_dict(attrs["arch"]), f"{source.study}#{int(number)}"))
    return found


def enqueue_warm_start(study: optuna.Study, found: list[WarmArchitecture], space: Any,
                       log: Callable[[str], None]) -> list[str]:
    """Queue ``found`` in ``study`` (those inside ``space``, each architecture once, none already
    queued); say in one line what was queued and in one line what was skipped. Returns the queued ids."""
    from search_spaces import PRESETS

    queued = set()
    for trial in study.get_trials(deepcopy=False):  # a new study: the presets just queued
        preset = trial.user_attrs.get("preset")
        queued.add(trial.user_attrs.get("arch_id") or (PRESETS[preset].id if preset in PRESETS else None))
    outside, taken = [], []
    for item in found:
        arch_id = item.arch.id
        if arch_id in queued or arch_id in taken:
            continue
        if item.arch not in space:
            outside.append(f"{arch_id} ({item.origin})")
            continue
        study.enqueue_trial(space.params_of(item.arch), user_attrs={WARM_ATTR: item.origin})
        taken.append(arch_id)
    sources = sorted({item.origin.rpartition("#")[0] for item in found})
    log(f"warm start: queued {len(taken)} architecture(s) from {', '.join(sources) or 'no study'}")
    if outside:
        log(f"warm start: skipped {len(outside)} architecture(s) outside space {space.name!r}: {', '.join(outside)}")
    return taken
