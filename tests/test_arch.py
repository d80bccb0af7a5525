"""The genotype: round trips, the stable id, canonical form, and every validation error."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nas.errors import ConfigError
from nas.model.arch import (
    IB,
    KD,
    Architecture,
    Binarize,
    Binarizer,
    DecoderSpec,
    load_architecture,
    save_architecture,
)
from search_spaces import PRESETS, get_preset


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml"])
def test_every_preset_round_trips_through_files(name: str, suffix: str, tmp_path: Path) -> None:
    arch = get_preset(name)
    path = save_architecture(arch, tmp_path / f"{name}{suffix}")
    loaded = load_architecture(path)
    assert loaded == arch and loaded.id == arch.id
    assert Architecture.from_dict(json.loads(json.dumps(arch.to_dict()))).id == arch.id
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind


def test_id_is_the_hash_of_canonical_json_and_ignores_key_order() -> None:
    arch = get_preset("bi-mtdp-f")
    assert arch.id == hashlib.sha256(arch.to_json().encode()).hexdigest()[:10]
    shuffled = {k: (dict(reversed(list(v.items()))) if isinstance(v, dict) else v) for k, v in reversed(arch.to_dict().items())}
    assert Architecture.from_dict(shuffled).id == arch.id
    assert len({get_preset(n).id for n in PRESETS}) == len(PRESETS)


def test_id_is_the_same_in_another_process() -> None:
    code = "from search_spaces import get_preset; print(get_preset('bi-mtdp-c').id)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "123"}, cwd=Path(__file__).parents[1])
    assert out.stdout.strip() == get_preset("bi-mtdp-c").id


def test_fields_without_effect_are_canonicalised() -> None:
    fp = Architecture(binarizer=Binarizer(activation="ste", weight_scale="none", react=True),
                      ib=IB(points=(), beta=0.5), kd=KD(points=(), weight=3.0))
    assert fp == Architecture() and fp.id == Architecture().id
    no_pad = Architecture(binarize=Binarize(distill=True, heads=True), decoder=DecoderSpec(distill="none"))
    assert no_pad.binarize.distill is False and no_pad.binarize.heads is True
    ordered = Architecture(ib=IB(points=("neck", "backbone"), beta=1e-3))
    assert ordered.ib.points == ("backbone", "neck")  # canonical order, same id whatever the order
    assert Architecture.from_dict({"width": 1, "ib": {"beta": 1}}).width == 1.0


def test_missing_fields_take_defaults_and_with_changes() -> None:
    arch = Architecture.from_dict({"decoder": {"sharing": "shared"}})
    assert arch.decoder == DecoderSpec(sharing="shared", distill="pad") and arch.width == 1.0
    changed = arch.with_changes(**{"decoder.sharing": "grouped", "width": 0.5})
    assert changed.decoder.sharing == "grouped" and changed.width == 0.5
    assert changed.binarized("stage1") is False


BAD = [
    # (dictionary, words the one-line error must contain)
    ({"colour": "red"}, ["colour", "binarize", "width"]),
    ({"binarize": {"stage": [True] * 4}}, ["binarize.stage", "binarize.stages"]),
    ({"binarize": "all"}, ["binarize", "stages"]),
    ({"binarize": {"stages": [True, True, True]}}, ["binarize.stages", "4 booleans"]),
    ({"binarize": {"neck": "yes"}}, ["binarize.neck", "true or false"]),
    ({"binarize": {"heads": 1}}, ["binarize.heads", "true or false"]),
    ({"binarizer": {"activation": "tanh"}}, ["binarizer.activation", "approx", "ste"]),
    ({"binarizer": {"weight_scale": "layer"}}, ["binarizer.weight_scale", "channel", "none"]),
    ({"ib": {"points": "backbone"}}, ["ib.points", "list"]),
    ({"ib": {"points": ["head"]}}, ["ib.points", "head", "backbone"]),
    ({"ib": {"points": ["neck", "neck"]}}, ["ib.points", "repeats"]),
    ({"ib": {"points": ["output"]}}, ["ib.points", "output", "distill"]),
    ({"ib": {"points": ["backbone"], "beta": -1}}, ["ib.beta", "number"]),
    ({"ib": {"points": ["backbone"], "beta": "1e-3"}}, ["ib.beta", "number"]),
    ({"kd": {"points": ["neck"], "weight": True}}, ["kd.weight", "number"]),
    ({"kd": {"points": ["neck"], "weight": float("nan")}}, ["kd.weight", "number"]),
    ({"decoder": {"sharing": "tree"}}, ["decoder.sharing", "separate", "grouped", "shared"]),
    ({"decoder": {"distill": "mti"}}, ["decoder.distill", "none", "pad"]),
    ({"width": 0}, ["width", "(0, 2]"]),
    ({"width": "wide"}, ["width", "number"]),
    ({"ib": {"points": ["distill"], "beta": 1e-3}, "decoder": {"distill": "none"}}, ["ib.points", "'distill'", "'none'", "backbone"]),
    ({"kd": {"points": ["distill"], "weight": 1.0}, "decoder": {"distill": "none"}}, ["kd.points", "'distill'", "output"]),
]


@pytest.mark.parametrize("data,words", BAD, ids=[str(i) for i in range(len(BAD))])
def test_validation_names_the_field_and_what_is_allowed(data: dict, words: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        Architecture.from_dict(data)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)


def test_python_construction_is_validated_too() -> None:
    with pytest.raises(ConfigError, match="decoder.sharing"):
        Architecture(decoder=DecoderSpec(sharing="tree"))
    with pytest.raises(ConfigError, match="ib: expected a IB"):
        Architecture(ib={"points": []})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="architecture: expected a mapping"):
        Architecture.from_dict([1, 2])  # type: ignore[arg-type]


def test_file_errors_are_one_line_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_architecture(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="bad.json: not valid json"):
        load_architecture(tmp_path / "bad.json")
    (tmp_path / "bad.yaml").write_text("width: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid yaml"):
        load_architecture(tmp_path / "bad.yaml")
    # safe_load: no arbitrary Python objects from a file
    (tmp_path / "evil.yaml").write_text("!!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="evil.yaml: not valid yaml"):
        load_architecture(tmp_path / "evil.yaml")
    (tmp_path / "field.yaml").write_text("decoder: {sharing: tree}\n")
    with pytest.raises(ConfigError, match=r"field.yaml: decoder.sharing: expected one of"):
        load_architecture(tmp_path / "field.yaml")


def test_flat_form_round_trips_and_names_the_space_dimensions() -> None:
    """One flat form, derived from the dataclass: every preset round-trips, and a flag dimension
    (``binarize.stage2``, ``kd.output``) reads one member of a tuple field."""
    from nas.model.arch import dimension_names, flatten

    for name, arch in PRESETS.items():
        flat = arch.to_flat()
        assert list(flat) == list(dimension_names()), name
        assert Architecture.from_flat(flat) == arch and flatten(arch.to_dict()) == flat, name
    arch = Architecture.from_flat({"binarize.stage2": True, "kd.output": True, "kd.weight": 2.0, "width": 0.5})
    assert arch.binarize.stages == (False, True, False, False) and arch.kd == KD(points=("output",), weight=2.0)
    with pytest.raises(ConfigError, match="unknown dimension 'binarize.stage5'"):
        Architecture.from_flat({"binarize.stage5": True})
    with pytest.raises(ConfigError, match="ib.neck: expected true or false"):
        Architecture.from_flat({"ib.neck": "yes"})
