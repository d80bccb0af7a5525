"""Exporting searched architectures: what to ship, and reading a shipped one back safely.

An export is one folder, ``results/<study>/exports/<arch-id>/``::

    arch.json       the architecture, a plain file for nas.model.arch.load_architecture / `bimtdp train --arch`
    weights.pt      the trained state_dict (tensors only: loads with torch.load(weights_only=True)): the
                    longest retraining's (``bimtdp retrain``, nas.deploy.retrain) when there is one, else
                    the search's proxy weights; the manifest's ``weights`` says which
    cost.json       the full cost report at the dataset's cost resolution, per-module table included
    metrics.json    the shipped weights' metrics and Δm, fidelity, study and trial number (and, for
                    retrained weights, the proxy's under ``proxy``)
    model.pt2       the deployable graph (torch.export), or model.ts (TorchScript) when export fails
    README.md       the graph's input and output contract in words, and what the checks below prove
    manifest.json   sha256 and size of every file above, the arch id, the dataset, the graph format,
                    the input contract (ImageNet-normalised RGB, sides) and each output's meaning

Deployable graph. The binary layers use custom ``torch.autograd.Function`` s (sign with a surrogate
gradient, weight binarization). In eval mode under ``torch.no_grad`` only their ``forward`` runs,
and ``torch.export`` traces straight through it into plain ATen ops (``ge``/``where`` for sign,
``abs``/``mean``/``mul`` for the weight scale): the graph saves, loads without our code, runs with
a dynamic batch and any input side that is a multiple of 32 from 64 (:data:`MIN_SIDE`), and reproduces the eager outputs
exactly. It is tried first. ``torch.jit.trace`` of the same network records each Function as a
``prim::PythonOp`` that cannot be serialised ("Could not export Python function call
'_BinarizeWeight'"), so the TorchScript fallback traces a *folded* copy instead: latent weights
replaced by their signs (binary linears: by their binarized values) with each conv's scale α kept
in a buffer, so the copy computes the eval arithmetic of :meth:`BinaryConv2d.scaled_conv`, and the
estimators replaced by the plain :func:`nas.model.binary.sign`. Either graph is
checked against the eager model on a random input before it is written; a graph that fails the
check is not shipped (the manifest says why).

Trust. The manifest's sha256 list has no key: it catches damage, not an editor, who can recompute
it. So reading never executes code from the folder: weights load with ``weights_only=True`` and
:func:`load_graph` passes the graph through :func:`nas.deploy.graph_archive.check_graph_archive` before
``torch.export.load`` (which would otherwise unpickle, ``eval`` and ``exec`` what the archive holds).

Writes are atomic: the folder is assembled under a temporary name inside ``exports/`` and renamed
into place; an existing export of the same id is moved aside first and removed after the rename.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from analysis.atomic import json_bytes
from analysis.pareto import knee_point
from nas.errors import ConfigError
from nas.model.arch import Architecture, load_architecture
from nas.model.builder import INPUT_MULTIPLE
from nas.runtime.arch_latency import LATENCY_COLUMNS

if TYPE_CHECKING:
    import optuna
    import torch

__all__ = [
    "EXPORT_FORMAT",
    "ExportResult",
    "Selection",
    "build_graph",
    "export_architecture",
    "export_trials",
    "load_export",
    "load_graph",
    "select_trials",
    "verify_export",
]

#: ``manifest.json``'s ``format`` value; bump ``version`` when the layout changes.
EXPORT_FORMAT = "bimtdp-export"
EXPORT_VERSION = 1
GRAPH_FILES = {"torch.export": "model.pt2", "torchscript": "model.ts"}
#: A graph must reproduce the eager outputs this closely (both run the same ATen ops in the same order).
GRAPH_TOLERANCE = 1e-4
#: Input sides the graph accepts: multiples of 32 (five stride-2 stages) from 64 to 4096. 32 itself
#: is out: the last stage would be 1 pixel wide, and torch.export specialises a dimension of size 1,
#: so a graph traced with dynamic sides cannot also take it (the eager network can).
SIDE_MULTIPLE = INPUT_MULTIPLE
MIN_SIDE, MAX_SIDE = 2 * SIDE_MULTIPLE, 128 * SIDE_MULTIPLE


def graph_contract(dataset: str) -> dict[str, Any]:
    """What the deployable graph takes and returns (written into manifest.json and README.md)."""
    from nas.data import dataset_meta
    from nas.data._common import IMAGENET_MEAN, IMAGENET_STD
    from nas.model.tasks import get_task

    meta = dataset_meta(dataset)
    return {
        "input": {
            "layout": "float32 tensor [N, 3, H, W], RGB",
            "normalisation": "pixel / 255, then (x - mean) / std per channel (ImageNet statistics)",
            "mean": list(IMAGENET_MEAN),
            "std": list(IMAGENET_STD),
            "channels": 3,
            "side_multiple_of": SIDE_MULTIPLE,
            "min_side": MIN_SIDE,
            "max_side": MAX_SIDE,
            "max_batch": 4096,
            "cost_resolution": list(meta.cost_resolution),
        },
        "outputs": {
            spec.name: {
                "channels": spec.channels,
                "raw": get_task(spec.name).raw_output,
                "decoded": get_task(spec.name).decoded_output,
                **({"classes": list(meta.class_names)} if spec.name == "semseg" and meta.class_names else {}),
            }
            for spec in meta.tasks
        },
    }


def _readme(arch: Architecture, dataset: str, contract: Mapping[str, Any], graph_format: str | None) -> str:
    """README.md of an export folder: the contract in words, and what the folder's checks prove."""
    source = contract["input"]
    lines = [
        f"# Export of architecture {arch.id} ({dataset})",
        "",
        "Files: arch.json (the architecture), weights.pt (state_dict; `torch.load(..., weights_only=True)`),",
        "cost.json, metrics.json, " + (f"{GRAPH_FILES[graph_format]} (the deployable graph, {graph_format}), " if graph_format else "")
        + "manifest.json (sha256 of every file).",
        "",
        "## Input",
        "",
        f"- {source['layout']}; {source['normalisation']}:",
        f"  mean {source['mean']}, std {source['std']}.",
        f"- H and W multiples of {source['side_multiple_of']}, from {source['min_side']} to {source['max_side']}; batch 1 to {source['max_batch']}.",
        f"- Costs (cost.json) are quoted at {source['cost_resolution'][0]}x{source['cost_resolution'][1]}.",
        "",
        "## Outputs: a dict {task: tensor} at the input's H x W",
        "",
    ]
    lines += [f"- `{task}`: {out['raw']}; decoded: {out['decoded']}." for task, out in contract["outputs"].items()]
    lines += [
        "",
        "`bimtdp predict --export <this folder> IMAGE...` writes the decoded predictions as PNG and .npy.",
        "",
        "## Trust",
        "",
        "The manifest's hashes detect accidental damage; they have no key, so they do not prove who",
        "wrote the folder. Loading never runs code from it: weights.pt is read with weights_only=True,",
        "and nas.deploy.export.load_graph refuses a graph archive holding pickled or native payloads or any",
        "expression, guard or operator our exporter does not write. Running the graph runs its",
        "torch operators on your inputs; treat a folder from elsewhere like any other program input.",
        "",
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class ExportResult:
    """One export written: where, which trial, which graph format (``None``: no graph) and why."""

    arch_id: str
    path: Path
    trial: int
    preset: str
    graph_format: str | None
    graph_note: str
    files: tuple[str, ...]
    #: which weights were shipped (``{"source": "search" | "retrain", "fidelity", "file"}``); None: none
    weights: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "arch_id": self.arch_id,
            "path": str(self.path),
            "trial": self.trial,
            "preset": self.preset,
            "graph_format": self.graph_format,
            "graph_note": self.graph_note,
            "files": list(self.files),
            "weights": dict(self.weights) if self.weights else None,
        }


@dataclass(frozen=True)
class Selection:
    """Which trials to export: exactly one of the fields is set (mirrors the CLI's options)."""

    trial: int | None = None
    knee: bool = False
    pareto: bool = False
    best_under_ops: float | None = None
    #: the K best architectures by non-dominated rank (:func:`analysis.pareto.ranked_members`)
    top: int | None = None

    def __post_init__(self) -> None:
        chosen = sum([self.trial is not None, self.knee, self.pareto, self.best_under_ops is not None, self.top is not None])
        if chosen != 1:
            raise ConfigError("choose exactly one of --trial N, --knee, --pareto, --best-under-ops X, --top K")
        if self.top is not None and not (isinstance(self.top, int) and self.top >= 1):
            raise ConfigError(f"--top must be an integer >= 1, got {self.top!r}")


# ------------------------------------------------------------------------------------ selection
def select_trials(study: "optuna.Study", objectives: Sequence[Any], selection: Selection) -> list["optuna.trial.FrozenTrial"]:
    """The COMPLETE trials a selection names, one per architecture, cheapest first for fronts.

    Raises:
        ConfigError: no such trial, a trial that did not complete, an empty front, or no trial
            under the OPs budget.
    """
    import optuna

    from nas.search.study_tables import front_frame, trials_frame

    trials = study.get_trials(deepcopy=False)
    if selection.trial is not None:
        number = selection.trial
        if not 0 <= number < len(trials):
            span = f"0..{len(trials) - 1}" if trials else "none yet"
            raise ConfigError(f"no trial {number} in study {study.study_name!r} (trials: {span})")
        chosen = trials[number]
        if chosen.state != optuna.trial.TrialState.COMPLETE:
            reason = chosen.user_attrs.get("fail_reason") or "no result"
            raise ConfigError(f"trial {number} is {chosen.state.name} ({reason}): only COMPLETE trials can be exported")
        return [chosen]

    frame = trials_frame(study)
    if selection.best_under_ops is not None:
        budget = float(selection.best_under_ops)
        ok = frame[(frame["state"] == "COMPLETE") & frame["feasible"].astype(bool)]
        under = ok[ok["ops"] <= budget]
        if under.empty:
            cheapest = f"; the cheapest feasible complete trial has {ok['ops'].min():.4g} OPs" if len(ok) else ""
            raise ConfigError(f"no feasible complete trial has OPs <= {budget:.4g}{cheapest}")
        best = under.sort_values(["delta_m", "ops", "number"], ascending=[False, True, True]).iloc[0]
        return [trials[int(best["number"])]]

    if selection.top is not None:
        from analysis.pareto import ranked_members

        ranked = ranked_members(frame, objectives).head(selection.top)
        if ranked.empty:
            raise ConfigError(f"study {study.study_name!r} has no complete feasible trial to rank")
        return [trials[int(number)] for number in ranked["number"]]
    front = front_frame(frame, objectives)
    if front.empty:
        raise ConfigError(f"study {study.study_name!r} has no complete feasible trial: its Pareto front is empty")
    if selection.knee:
        if len(objectives) != 2:
            raise ConfigError(f"--knee needs a study with two objectives; this one has {[o.name for o in objectives]}")
        knee = knee_point(front, objectives)
        return [trials[int(knee["number"])]]
    return [trials[int(number)] for number in front["number"]]  # one per architecture (front_frame)


# ------------------------------------------------------------------------------------ graph
def _fold_for_tracing(model: "torch.nn.Module") -> "torch.nn.Module":
    """A copy whose binary layers hold binarized weights and call plain sign (no autograd.Function)."""
    import torch

    from nas.model.binary import BinaryConv2d, BinaryLinear, Sign, binarize_weight, channel_scale, sign

    class _FoldedConv(BinaryConv2d):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.scaled_conv(self.binarize_input(x), self.weight, self.folded_scale)

    class _FoldedLinear(BinaryLinear):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.linear(self.binarize_input(x), self.weight, self.bias)

    folded = copy.deepcopy(model).eval()
    with torch.no_grad():
        for module in folded.modules():
            if isinstance(module, Sign):
                module._sign = sign
            if isinstance(module, BinaryConv2d):
                module.register_buffer("folded_scale", channel_scale(module.weight, module.weight_scale))
                module.weight.copy_(sign(module.weight))
                module.__class__ = _FoldedConv
            elif isinstance(module, BinaryLinear):
                module.weight.copy_(binarize_weight(module.weight, module.weight_scale))
                module.__class__ = _FoldedLinear
    return folded


def _graph_bytes(model: "torch.nn.Module", example: "torch.Tensor", graph_format: str) -> bytes:
    import torch

    buffer = io.BytesIO()
    with torch.no_grad():
        if graph_format == "torch.export":
            from torch.export import Dim

            # Batch ≥ 2 in the example: torch.export specialises a size-1 dimension to a constant.
            steps = {"min": MIN_SIDE // SIDE_MULTIPLE, "max": MAX_SIDE // SIDE_MULTIPLE}
            sides = {2: SIDE_MULTIPLE * Dim("h32", **steps), 3: SIDE_MULTIPLE * Dim("w32", **steps)}
            program = torch.export.export(model, (example,), dynamic_shapes={"x": {0: Dim("batch", min=1, max=4096), **sides}})
            torch.export.save(program, buffer)
        elif graph_format == "torchscript":
            traced = torch.jit.trace(_fold_for_tracing(model), (example,), strict=False, check_trace=False)
            torch.jit.save(traced, buffer)
        else:
            raise ValueError(f"unknown graph format {graph_format!r}; choose one of {list(GRAPH_FILES)}")
    return buffer.getvalue()


def _load_graph_bytes(data: bytes, graph_format: str, where: str = "graph") -> Any:
    """The callable graph in ``data``, after :func:`nas.deploy.graph_archive.check_graph_archive` accepted it."""
    import torch

    from nas.deploy.graph_archive import check_graph_archive

    if graph_format not in GRAPH_FILES:
        raise ConfigError(f"{where}: unknown graph format {graph_format!r}; choose one of {list(GRAPH_FILES)}")
    check_graph_archive(data, graph_format, where)
    if graph_format == "torch.export":
        return torch.export.load(io.BytesIO(data)).module()
    return torch.jit.load(io.BytesIO(data))


def _max_difference(expected: Mapping[str, "torch.Tensor"], got: Mapping[str, "torch.Tensor"]) -> float:
    if set(expected) != set(got):
        return float("inf")
    return max(float((expected[k] - got[k]).abs().max()) for k in expected)


def build_graph(
    model: "torch.nn.Module",
    example: "torch.Tensor",
    *,
    formats: Sequence[str] = ("torch.export", "torchscript"),
    probe_shape: Sequence[int] | None = None,
) -> tuple[str | None, bytes | None, str]:
    """Serialise ``model`` (eval mode) as the first format in ``formats`` that round-trips.

    Each candidate is traced on ``example``, saved, loaded back and run on a random input of
    ``probe_shape`` (default: one more image than ``example``); it is kept only if it reproduces the
    eager outputs there within :data:`GRAPH_TOLERANCE`.

    Returns:
        ``(format, bytes, note)``; ``(None, None, note)`` when no format works (the note says why).
    """
    import torch

    model = model.eval()
    shape = tuple(probe_shape) if probe_shape is not None else (example.shape[0] + 1, *example.shape[1:])
    probe = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    notes = []
    for graph_format in formats:
        try:
            data = _graph_bytes(model, example, graph_format)
            graph = _load_graph_bytes(data, graph_format)
            with torch.no_grad():
                difference = _max_difference(model(probe), graph(probe))
        except Exception as error:  # a format that cannot represent the network: try the next one
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            notes.append(f"{graph_format} failed: {type(error).__name__}: {first[:200]}")
            continue
        if difference <= GRAPH_TOLERANCE:
            note = "; ".join([*notes, f"{graph_format} reproduces the eager outputs (max |diff| {difference:.2g})"])
            return graph_format, data, note
        notes.append(f"{graph_format} differs from the eager model by {difference:.3g}")
    return None, None, "; ".join(notes) or "no graph format asked for"


def load_graph(path: str | os.PathLike[str]) -> Any:
    """Load an export's deployable graph (a callable: ``graph(x) -> {task: tensor}``), verified.

    Needs none of this project's code to run the graph itself; this helper only checks the
    manifest first.
    """
    path = Path(path)
    manifest = verify_export(path)
    graph = manifest.get("graph") or {}
    file = graph.get("file")
    if not file:
        raise ConfigError(f"{path}: this export has no deployable graph ({graph.get('note', 'none written')})")
    if file not in manifest["files"] or GRAPH_FILES.get(graph.get("format") or "") != file:
        raise ConfigError(f"{path / 'manifest.json'}: the graph {file!r} ({graph.get('format')!r}) is not a listed graph file")
    data = (path / file).read_bytes()
    if _sha256(data) != manifest["files"][file].get("sha256"):  # the bytes loaded are the bytes checked
        raise ConfigError(f"{path}: {file} does not match its sha256 in manifest.json (changed or corrupted)")
    try:
        return _load_graph_bytes(data, graph["format"], where=str(path / file))
    except ConfigError:
        raise
    except Exception as error:  # a damaged archive torch cannot read: still one line
        first = (str(error).strip().splitlines() or [""])[0][:200]
        raise ConfigError(f"{path / file}: cannot load the graph ({type(error).__name__}: {first})") from None


# ------------------------------------------------------------------------------------ writing
def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _cost_record(arch: Architecture, dataset: str) -> tuple[dict[str, Any], Any]:
    """The cost report at the dataset's cost resolution (summary + per-module records), and the model."""
    import torch

    from nas.cost.bitops import count
    from nas.data import dataset_meta
    from nas.model.builder import build

    meta = dataset_meta(dataset)
    model = build(arch, meta.tasks)
    report = count(model, torch.zeros(1, 3, *meta.cost_resolution))
    table = report.table()
    record = {
        "dataset": dataset,
        "resolution": list(meta.cost_resolution),
        "convention": "OPs = FLOPs + BOPs/64; BN, pooling and element-wise ops in 'other', not in OPs",
        **report.summary(),
        "modules": json.loads(table.to_json(orient="records")),
    }
    return record, model


def _check_writable_target(exports_dir: Path, arch_id: str) -> None:
    """Refuse, before any work, an ``exports/`` or ``exports/<id>`` that is a file or a broken link."""
    for path in (exports_dir, exports_dir / arch_id):
        if path.is_symlink() and not path.exists():
            raise ConfigError(f"{path} is a broken symbolic link (to {os.readlink(path)}); remove it or point it at a folder")
        if path.exists() and not path.is_dir():
            raise ConfigError(f"{path} exists and is not a folder; remove it to export there")


def _replace_dir(tmp: Path, target: Path) -> None:
    """Rename ``tmp`` to ``target``; an existing ``target`` is moved aside first, removed after."""
    aside = None
    if target.exists():
        aside = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".old-{target.name}-"))
        os.rename(target, aside / target.name)
    try:
        os.rename(tmp, target)
    except BaseException:
        if aside is not None:  # put the previous export back
            os.rename(aside / target.name, target)
            shutil.rmtree(aside, ignore_errors=True)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def export_architecture(
    arch: Architecture,
    state_dict: Mapping[str, "torch.Tensor"] | None,
    exports_dir: str | os.PathLike[str],
    *,
    dataset: str,
    metrics: Mapping[str, Any],
    graph: bool = True,
    graph_formats: Sequence[str] = ("torch.export", "torchscript"),
    latency: Mapping[str, Any] | None = None,
    weights_source: Mapping[str, Any] | None = None,
) -> tuple[Path, str | None, str]:
    """Write one export folder ``<exports_dir>/<arch.id>/`` atomically.

    Args:
        arch: the architecture.
        state_dict: its trained weights, or ``None`` to export the architecture without weights
            (then no graph either: retrain with ``bimtdp train --arch <export>/arch.json``).
        exports_dir: the ``exports/`` folder of a study.
        dataset: whose tasks the network predicts and whose cost resolution the cost uses.
        metrics: written as ``metrics.json``.
        graph: also write the deployable graph.
        graph_formats: formats to try, in order (see :func:`build_graph`).
        latency: the measured latency and its processor (a study's ``latency*`` attributes), added
            to ``cost.json`` when given.
        weights_source: where ``state_dict`` comes from (``{"source": "search" | "retrain",
            "fidelity": ...}``), written into the manifest as ``weights``.

    Returns:
        The folder, the graph format written (or ``None``) and the note saying why.

    Raises:
        ConfigError: the weights do not fit the architecture.
    """
    import torch

    from nas.data import dataset_meta

    exports_dir = Path(exports_dir)
    _check_writable_target(exports_dir, arch.id)
    cost, model = _cost_record(arch, dataset)
    cost |= dict(latency or {})
    files: dict[str, bytes] = {
        "arch.json": (json.dumps(arch.to_dict(), indent=2) + "\n").encode("utf-8"),
        "cost.json": json_bytes(cost),
        "metrics.json": json_bytes(dict(metrics)),
    }
    graph_format, graph_note = None, "no weights exported" if state_dict is None else "not asked for"
    if state_dict is not None:
        try:
            model.load_state_dict(state_dict, strict=True)
        except RuntimeError as error:
            raise ConfigError(f"architecture {arch.id}: the weights do not fit it ({str(error).splitlines()[0]})") from None
        buffer = io.BytesIO()
        torch.save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, buffer)
        files["weights.pt"] = buffer.getvalue()
        if graph:
            # Traced at a small size (the sides are dynamic), checked at the cost resolution.
            example = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
            probe_shape = (3, 3, *dataset_meta(dataset).cost_resolution)
            graph_format, data, graph_note = build_graph(model, example, formats=graph_formats, probe_shape=probe_shape)
            if graph_format is not None:
                files[GRAPH_FILES[graph_format]] = data
    contract = graph_contract(dataset)
    files["README.md"] = _readme(arch, dataset, contract, graph_format).encode("utf-8")
    manifest = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "arch_id": arch.id,
        "dataset": dataset,
        "tasks": list(dataset_meta(dataset).task_names),
        **contract,
        "torch": torch.__version__,
        "graph": {"format": graph_format, "file": GRAPH_FILES.get(graph_format or ""), "note": graph_note},
        "weights": dict(weights_source or {}) if state_dict is not None else None,
        "files": {name: {"sha256": _sha256(data), "bytes": len(data)} for name, data in sorted(files.items())},
    }
    files["manifest.json"] = json_bytes(manifest)

    exports_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=exports_dir, prefix=f".tmp-{arch.id}-"))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; an export is meant to be shared
        for name, data in files.items():
            with open(tmp / name, "wb") as handle:
                handle.write(data)
        _replace_dir(tmp, exports_dir / arch.id)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return exports_dir / arch.id, graph_format, graph_note


def _trial_metrics(trial: "optuna.trial.FrozenTrial", study_name: str, config: Mapping[str, Any]) -> dict[str, Any]:
    attrs = trial.user_attrs
    keys = ("delta_m", "ops", "flops", "bops", "params", "size_bits", "latency", "seconds", "steps", "feasible", "preset", "duplicate_of")
    return {
        "study": study_name,
        "trial": trial.number,
        "arch_id": attrs.get("arch_id"),
        "fidelity": attrs.get("fidelity", config.get("fidelity")),
        "dataset": config.get("dataset", "synth"),
        "seed": config.get("seed"),
        "metrics": attrs.get("metrics", {}),
        **{key: attrs[key] for key in keys if key in attrs},
    }


def export_trials(
    study: "optuna.Study",
    config: Mapping[str, Any],
    trials: Sequence["optuna.trial.FrozenTrial"],
    study_directory: str | os.PathLike[str],
    *,
    weights: bool = True,
    graph: bool = True,
) -> list[ExportResult]:
    """Export each trial to ``<study_directory>/exports/<arch-id>/``.

    Every trial's weights are checked to exist before anything is written, so a missing file
    leaves no partial set of exports behind.

    Raises:
        ConfigError: a trial's weights are missing (the message says how to get them).
    """
    directory = Path(study_directory)
    dataset = config.get("dataset", "synth")
    sources = {t.number: _weights_source(directory, t) for t in trials} if weights else {}
    missing = [(t, sources[t.number][1]) for t in trials if weights and not sources[t.number][1].is_file()]
    for trial in trials:
        _check_writable_target(directory / "exports", trial.user_attrs["arch_id"])
    if missing:
        trial, path = missing[0]
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ConfigError(
            f"trial {trial.number} (arch {trial.user_attrs['arch_id']}): no trained weights at {path}{more}; "
            "export the architecture alone with --no-weights, or retrain it with "
            f"`bimtdp retrain --study {study.study_name} --trial {trial.number} --fidelity long`"
        )
    results = []
    for trial in trials:
        arch = Architecture.from_dict(trial.user_attrs["arch"])
        metrics = _trial_metrics(trial, study.study_name, config)
        state, source = None, None
        if weights:
            source, path, record = sources[trial.number]
            state = _read_state(path)
            if record is not None:  # the shipped weights' metrics; the search's stay under "proxy"
                metrics = {**metrics, **{k: record[k] for k in ("metrics", "delta_m", "fidelity", "steps", "seconds", "seed")},
                           "proxy": {k: metrics.get(k) for k in ("fidelity", "delta_m", "metrics", "steps", "seconds")}}
        out, graph_format, note = export_architecture(
            arch, state, directory / "exports", dataset=dataset, metrics=metrics,
            graph=graph, latency={k: trial.user_attrs[k] for k in LATENCY_COLUMNS if k in trial.user_attrs},
            weights_source=source,
        )
        results.append(
            ExportResult(
                arch_id=arch.id,
                path=out,
                trial=trial.number,
                preset=trial.user_attrs.get("preset", ""),
                graph_format=graph_format,
                graph_note=note,
                files=tuple(sorted(p.name for p in out.iterdir())),
                weights=source,
            )
        )
    return results


def _weights_source(directory: Path, trial: "optuna.trial.FrozenTrial") -> tuple[dict[str, Any], Path, dict[str, Any] | None]:
    """Which weights an export of ``trial`` ships: the longest retraining's (with its record), else the search's."""
    from nas.deploy.retrain_files import retrained_weights

    arch_id = trial.user_attrs["arch_id"]
    retrained = retrained_weights(directory, arch_id)
    if retrained is not None:
        record, path = retrained
        return {"source": "retrain", "fidelity": record["fidelity"], "file": path.relative_to(directory).as_posix()}, path, record
    path = directory / "weights" / f"{arch_id}.pt"
    return {"source": "search", "fidelity": trial.user_attrs.get("fidelity"), "file": path.relative_to(directory).as_posix()}, path, None


def _read_state(path: Path) -> Mapping[str, "torch.Tensor"]:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ConfigError(f"{path}: cannot read the trained weights ({type(error).__name__}: {error})") from None


# ------------------------------------------------------------------------------------ reading
def verify_export(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Check an export folder against its manifest; return the manifest.

    Raises:
        ConfigError: no manifest, a file missing, changed (sha256) or unlisted where required, or
            an arch id that does not match arch.json.
    """
    path = Path(path)
    manifest_path = path / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: not an export (no manifest.json)") from None
    except (OSError, ValueError) as error:
        raise ConfigError(f"{manifest_path}: unreadable manifest ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != EXPORT_FORMAT or not isinstance(manifest.get("files"), dict):
        raise ConfigError(f"{manifest_path}: not a {EXPORT_FORMAT} manifest")
    if "arch.json" not in manifest["files"]:
        raise ConfigError(f"{manifest_path}: lists no arch.json")
    for name, entry in sorted(manifest["files"].items()):
        if "/" in name or name.startswith("."):
            raise ConfigError(f"{manifest_path}: bad file name {name!r}")
        file = path / name
        if not file.is_file():
            raise ConfigError(f"{path}: {name} is missing (the manifest lists it)")
        if _sha256(file.read_bytes()) != entry.get("sha256"):
            raise ConfigError(f"{path}: {name} does not match its sha256 in manifest.json (changed or corrupted)")
    arch = load_architecture(path / "arch.json")
    if arch.id != manifest.get("arch_id"):
        raise ConfigError(f"{path}: arch.json describes architecture {arch.id}, the manifest says {manifest.get('arch_id')}")
    return manifest


def load_export(path: str | os.PathLike[str], *, packed: bool = False) -> tuple[Architecture, "torch.nn.Module"]:
    """Verify an export (see :func:`verify_export`) and rebuild its network with the exported weights.

    Args:
        path: the export folder.
        packed: hand back the packed inference network (:func:`nas.runtime.packed.pack_or_emulate`:
            binary convs bit-packed, built from ``weights.pt`` alone); without compiled kernels the
            emulated network, after one line on stderr saying so.

    Returns:
        The architecture and the network in eval mode.

    Raises:
        ConfigError: the export fails verification, has no weights, or its weights do not fit.
    """
    import torch

    from nas.data import dataset_meta
    from nas.model.builder import build

    path = Path(path)
    manifest = verify_export(path)
    arch = load_architecture(path / "arch.json")
    if "weights.pt" not in manifest["files"]:
        raise ConfigError(f"{path}: this export has no weights; retrain with `bimtdp train --arch {path / 'arch.json'}`")
    try:
        state = torch.load(path / "weights.pt", map_location="cpu", weights_only=True)
    except Exception as error:
        raise ConfigError(f"{path / 'weights.pt'}: not a loadable state_dict ({type(error).__name__})") from None
    model = build(arch, dataset_meta(manifest.get("dataset", "synth")).tasks)
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as error:
        raise ConfigError(f"{path / 'weights.pt'}: the weights do not fit architecture {arch.id} ({str(error).splitlines()[0]})") from None
    if packed:
        from nas.runtime.packed import pack_or_emulate

        return arch, pack_or_emulate(model)
    return arch, model.eval()
