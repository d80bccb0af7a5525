"""Small studies for the plot/report/export tests.

:func:`hand_study` writes, in seconds, what a smoke search leaves behind (the Optuna study with the
search's user attributes, config.yaml, trials tables and the weights of every architecture), using
real architectures and real (initial) weights, but no training and no fvcore count (seconds each):
costs are a rough model of what binarization saves and the metrics are made up from them, so that
the front is a trade-off. The numbers are consistent (OPs = FLOPs + BOPs/64), not accurate. :func:`real_study` runs
the actual search (slow: tens of seconds on two cores).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import optuna
import pytest
import torch
import yaml

from nas.data import dataset_meta
from nas.model.builder import build
from nas.search.config import SearchConfig
from nas.search.local import Search
from nas.search.study_objectives import parse_objectives
from nas.search.study_open import CONFIG_ATTR
from nas.search.study_tables import write_tables
from search_spaces import PRESETS, load_space


def smoke_config(root: Path, study: str = "s") -> SearchConfig:
    return SearchConfig(study=study, space="mini", fidelity="smoke", sampler="random", results_dir=str(root))


def real_study(root: Path, study: str = "s", trials: int = 6) -> None:
    Search(smoke_config(root, study), log=lambda line: None).run(trials=trials)


def _rough_cost(model: torch.nn.Module) -> dict[str, float]:
    from nas.model.binary import BinaryConv2d

    binary = sum(m.weight.numel() for m in model.modules() if isinstance(m, BinaryConv2d))
    params = sum(p.numel() for p in model.parameters())
    flops, bops = 300.0 * (params - binary), 300.0 * binary
    return {"flops": flops, "bops": bops, "ops": flops + bops / 64, "params": params, "size_bits": 32 * (params - binary) + binary}


def hand_study(root: Path, study: str = "s", *, sampled: int = 2, failed: str | None = "RuntimeError: loss is NaN") -> optuna.Study:
    config = smoke_config(root, study).validated()
    directory = config.directory
    directory.mkdir(parents=True, exist_ok=True)
    objectives = parse_objectives(list(config.objectives))
    created = optuna.create_study(study_name=study, storage=config.storage_url,
                                  directions=[o.direction for o in objectives])
    with warnings.catch_warnings():  # experimental in Optuna, relied upon (nas.search.quiet_optuna)
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        created.set_metric_names([o.name for o in objectives])  # as the search names them
    created.set_user_attr(CONFIG_ATTR, config.identity())
    (directory / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    tasks = dataset_meta("synth").tasks
    space = load_space("mini")
    rng = torch.Generator().manual_seed(0)
    archs = list(PRESETS.items())
    sampler = optuna.samplers.RandomSampler(seed=1)
    scratch = optuna.create_study(sampler=sampler)
    for _ in range(sampled):
        archs.append(("", space.suggest(scratch.ask())))
    for name, arch in archs:
        torch.manual_seed(len(created.trials))
        model = build(arch, tasks)
        summary = _rough_cost(model)
        buffer = io.BytesIO()
        torch.save(model.state_dict(), buffer)
        (directory / "weights").mkdir(exist_ok=True)
        (directory / "weights" / f"{arch.id}.pt").write_bytes(buffer.getvalue())
        quality = float(torch.rand((), generator=rng)) * 0.1 + 0.02 * torch.log10(torch.tensor(summary["ops"])).item()
        metrics = {"semseg": {"miou": 0.1 + quality}, "depth": {"rmse": 4.0 - quality}, "normals": {"mean": 80 - 10 * quality},
                   "edges": {"odsf": 0.4 + quality}}
        delta_m = 0.0 if name == "mtdp-fp" else -30.0 * (1 - quality)
        attrs = {"arch": arch.to_dict(), "arch_id": arch.id, "preset": name, "metrics": metrics, "delta_m": delta_m,
                 "seconds": 0.5, "steps": 3, "fidelity": "smoke", "feasible": True,
                 **{k: summary[k] for k in ("ops", "flops", "bops", "params", "size_bits")}}
        created.add_trial(optuna.trial.create_trial(values=[delta_m, summary["ops"]], user_attrs=attrs))
    if failed:
        trial = created.ask()
        trial.set_user_attr("fail_reason", failed)
        created.tell(trial, state=optuna.trial.TrialState.FAIL)
    write_tables(created, objectives, directory)
    return created


@pytest.fixture(scope="session")
def small_export(tmp_path_factory) -> Path:
    """A real export with a torch.export graph: bi-mtdp-f at width 0.25, untrained weights (import it to use it)."""
    import dataclasses

    from nas.deploy.export import export_architecture
    from search_spaces import get_preset

    arch = dataclasses.replace(get_preset("bi-mtdp-f"), width=0.25)
    torch.manual_seed(0)
    model = build(arch, dataset_meta("synth").tasks)
    folder, graph_format, note = export_architecture(arch, model.state_dict(), tmp_path_factory.mktemp("exports"),
                                                     dataset="synth", metrics={})
    assert graph_format == "torch.export", note
    return folder
