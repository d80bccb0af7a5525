"""One space definition: Optuna, Ray, sampling, enumeration and validation agree; presets; YAML spaces."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import optuna
import pytest

from nas.errors import ConfigError
from nas.model.arch import Architecture
from search_spaces import (
    PRESETS,
    SPACES,
    Dimension,
    SearchSpace,
    get_preset,
    get_space,
    load_space,
    preset_doc,
    space_from_dict,
)
from search_spaces.presets import WIDTH

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(params=sorted(SPACES))
def space(request: pytest.FixtureRequest) -> SearchSpace:
    return get_space(request.param)


def test_ray_param_space_offers_exactly_the_dimensions(space: SearchSpace) -> None:
    params = space.param_space()
    assert list(params) == list(space.names)
    for dim in space.dimensions:
        assert list(params[dim.name].categories) == list(dim.choices)


def test_optuna_suggestions_are_the_dimensions_with_their_conditions(space: SearchSpace) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(40):
        trial = study.ask()
        arch = space.suggest(trial)
        assert space.decode(trial.params) == arch == space.validate(arch)
        assert trial.params == space.params_of(arch)
        for name, dist in trial.distributions.items():
            assert isinstance(dist, optuna.distributions.CategoricalDistribution)
            assert tuple(dist.choices) == space[name].choices
        # conditional: present exactly when active
        active: dict = {}
        for dim in space.dimensions:
            if dim.active(active):
                active[dim.name] = trial.params[dim.name]
        assert set(trial.params) == set(active)
        if not arch.ib.points:
            assert "ib.beta" not in trial.params
        if arch.decoder.distill == "none":
            assert "ib.distill" not in trial.params and "binarize.distill" not in trial.params
        study.tell(trial, 0.0)


def test_ray_configs_decode_ignoring_inactive_dimensions(space: SearchSpace) -> None:
    rng = np.random.default_rng(1)
    for _ in range(30):
        config = {d.name: d.choices[rng.integers(len(d.choices))] for d in space.dimensions}  # what Ray samples
        arch = space.decode(config)
        assert space.validate(arch) == arch


def test_sampling_is_seeded_and_stays_in_the_space(space: SearchSpace) -> None:
    def draw(seed: int) -> list[str]:
        rng = np.random.default_rng(seed)
        return [space.sample(rng).id for _ in range(20)]

    assert draw(7) == draw(7)
    assert draw(7) != draw(8)
    rng = np.random.default_rng(0)
    for _ in range(20):
        arch = space.sample(rng)
        assert space.validate(arch) == arch and space.decode(space.params_of(arch)) == arch


def test_mini_enumerates_its_144_distinct_architectures() -> None:
    mini, full = get_space("mini"), get_space("bimtdp")
    archs = list(mini.enumerate())
    assert len(archs) == mini.size() == 144
    assert len({a.id for a in archs}) == 144
    assert all(full.validate(a) == a for a in archs)  # a subspace of bimtdp
    assert all(a.binarize.stages == (True,) * 4 and a.width == 0.25 for a in archs)
    assert {a.decoder.sharing for a in archs} == {"separate", "grouped", "shared"}


def test_size_counts_exactly_what_enumeration_lists() -> None:
    full = get_space("bimtdp")
    sub = full.with_choices({"width": [0.5], "binarize.stage2": [True], "binarize.stage3": [True],
                             "binarize.stage4": [True], "kd.backbone": [False], "kd.neck": [False],
                             "binarizer.activation": ["approx"], "kd.weight": [1.0], "ib.beta": [1e-3],
                             "binarizer.weight_scale": ["channel"], "binarizer.react": [False]})
    listed = list(sub.enumerate(limit=20_000))
    assert len(listed) == sub.size() and len({a.id for a in listed}) == len(listed) > 1000
    assert full.size() == 88_690_392
    with pytest.raises(ConfigError, match="more than 10,000"):
        next(full.enumerate())


def test_presets_lie_in_the_full_space_and_document_their_reading() -> None:
    full = get_space("bimtdp")
    assert set(PRESETS) == {"mtdp-fp", "bi-mtdp-f", "bi-mtdp-c", "bi-mtdp-naive"}
    for name, arch in PRESETS.items():
        assert full.validate(arch).width == WIDTH and arch in full and get_preset(name) is arch
        assert "Reading" in preset_doc(name)
    assert get_preset("mtdp-fp") not in get_space("mini")
    fp, f, c, naive = (get_preset(n) for n in ("mtdp-fp", "bi-mtdp-f", "bi-mtdp-c", "bi-mtdp-naive"))
    assert not fp.binarize.any() and not fp.ib.points and not fp.kd.points
    assert f.binarize.distill and not c.binarize.distill and not f.binarize.heads and naive.binarize.heads
    assert f.ib.points == c.ib.points == ("backbone",) and not naive.ib.points and not naive.kd.points
    with pytest.raises(ConfigError, match=r"unknown preset 'bi-mtdp-x'; choose one of \['bi-mtdp-c'"):
        get_preset("bi-mtdp-x")


def test_validate_names_what_the_space_does_not_offer() -> None:
    full, mini = get_space("bimtdp"), get_space("mini")
    with pytest.raises(ConfigError, match=r"width: 1.0 is not in space 'bimtdp'; allowed: \[0.25, 0.5, 0.75\]"):
        full.validate(Architecture(width=1.0))
    with pytest.raises(ConfigError, match=r"binarize.stage1: False is not in space 'mini'; allowed: \[True\]"):
        mini.validate(get_preset("mtdp-fp").with_changes(width=0.25))
    with pytest.raises(ConfigError, match="decoder.sharing: expected one of"):
        full.validate({"decoder": {"sharing": "tree"}})
    # A space lacking a dimension pins that field to its default.
    narrow = SearchSpace("narrow", (Dimension("decoder.sharing", ("separate", "shared")),))
    assert narrow.size() == 2
    with pytest.raises(ConfigError, match="width: space 'narrow' has no dimension for this field"):
        narrow.validate(Architecture(width=0.5))


def test_decode_rejects_unknown_missing_and_foreign_values() -> None:
    mini = get_space("mini")
    params = mini.params_of(next(mini.enumerate()))
    with pytest.raises(ConfigError, match="unknown parameter 'colour'"):
        mini.decode({**params, "colour": 1})
    with pytest.raises(ConfigError, match="parameter 'width' is missing"):
        mini.decode({k: v for k, v in params.items() if k != "width"})
    with pytest.raises(ConfigError, match=r"width: 0.5 is not in space 'mini'; allowed: \[0.25\]"):
        mini.decode({**params, "width": 0.5})
    with pytest.raises(ConfigError, match=r"binarize.neck: 1 is not in space"):
        mini.decode({**params, "binarize.neck": 1})  # 1 is not True


def test_dimension_definitions_are_checked() -> None:
    with pytest.raises(ConfigError, match="at least one choice"):
        Dimension("width", ())
    with pytest.raises(ConfigError, match="choices repeat"):
        Dimension("width", (0.5, 0.5))
    with pytest.raises(ConfigError, match="decoder.sharing: expected one of"):
        Dimension("decoder.sharing", ("tree",))
    with pytest.raises(ConfigError, match="ib.neck: expected true or false"):
        Dimension("ib.neck", ("yes",))
    with pytest.raises(ConfigError, match="unknown dimension 'colour'"):
        Dimension("colour", ("red",))
    with pytest.raises(ConfigError, match="must be an earlier dimension"):
        SearchSpace("bad", (Dimension("ib.beta", (1e-3,), (("ib.neck", (True,)),)), Dimension("ib.neck", (False, True))))
    with pytest.raises(ConfigError, match="appears twice"):
        SearchSpace("bad", (Dimension("width", (0.5,)), Dimension("width", (0.25,))))


README_EXAMPLE = """\
# my_space.yaml: binary heads forbidden, decoders grouped, two widths
base: bimtdp
fix:
  binarize.heads: false
  decoder.sharing: grouped
choices:
  width: [0.25, 0.5]
  ib.beta: [0.001]
"""


def test_yaml_restriction_of_the_builtin_space(tmp_path: Path) -> None:
    path = tmp_path / "my_space.yaml"
    path.write_text(README_EXAMPLE)
    space = get_space(str(path))
    assert space.name == "my_space" and space["width"].choices == (0.25, 0.5)
    full = get_space("bimtdp")
    # per width: distill none 505·8·46 + pad 1017·16·94 (binarize flags · IB subsets · KD subsets×weights)
    assert space.size() == 2 * (505 * 8 * 46 + 1017 * 16 * 94) == 3_430_816
    rng = np.random.default_rng(0)
    for _ in range(30):
        arch = space.sample(rng)
        assert not arch.binarize.heads and arch.decoder.sharing == "grouped" and arch.width in (0.25, 0.5)
        assert full.validate(arch) == arch
    # Values may leave the base's grid as long as the genotype allows them.
    wide = space_from_dict({"choices": {"width": [1.0, 1.5]}})
    assert wide["width"].choices == (1.0, 1.5)


@pytest.mark.parametrize("text,match", [
    ("colour: red\n", "unknown key 'colour'"),
    ("base: huge\n", "base: unknown space 'huge'"),
    ("fix: {decoder.shared: true}\n", "has no dimension 'decoder.shared'"),
    ("fix: {decoder.sharing: tree}\n", "decoder.sharing: expected one of"),
    ("choices: {width: []}\n", "width: a dimension needs at least one choice"),
    ("choices: {width: 0.5}\n", "width: expected a list of choices"),
    ("fix: {width: 0.5}\nchoices: {width: [0.5]}\n", "width: given under both"),
    ("fix: [width]\n", "fix: expected a mapping"),
    ("- 1\n", "holds a mapping"),
    ("fix: {width: [0.5\n", "not valid YAML"),
    ("!!python/object/apply:os.system ['true']\n", "not valid YAML"),
])
def test_yaml_space_errors_name_the_problem(text: str, match: str, tmp_path: Path) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match) as info:
        load_space(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_unknown_space_and_missing_file() -> None:
    with pytest.raises(ConfigError, match=r"unknown search space 'tiny'; choose one of \['bimtdp', 'mini'\]"):
        get_space("tiny")
    with pytest.raises(ConfigError, match="cannot read space file"):
        get_space("/nonexistent/space.yaml")


def test_one_copy_of_each_domain() -> None:
    """The full space has one dimension per flat genotype field, named as the genotype names it, and
    offers every value the genotype knows for its categorical fields (the estimators: a fixed list)."""
    from nas.model.arch import DISTILL_MODES, SHARING_MODES, dimension_names, estimators
    from nas.model.binary import WEIGHT_SCALES
    from search_spaces.bimtdp import ESTIMATORS

    full = get_space("bimtdp")
    assert sorted(full.names) == sorted(dimension_names())
    assert full["decoder.sharing"].choices == SHARING_MODES
    assert full["decoder.distill"].choices == DISTILL_MODES
    assert full["binarizer.activation"].choices == ESTIMATORS and set(ESTIMATORS) <= set(estimators())
    assert full["binarizer.weight_scale"].choices == tuple(WEIGHT_SCALES)
    flags = [n for n in full.names if n.startswith(("ib.", "kd.")) and n not in ("ib.beta", "kd.weight")]
    assert all(full[n].choices == (False, True) for n in flags)
    assert list(itertools.chain(full.names)) == list(dict.fromkeys(full.names))


@pytest.mark.parametrize("name", sorted(SPACES))
def test_space_dictionary_round_trip(name: str) -> None:
    space = get_space(name)
    again = SearchSpace.from_dict(space.to_dict())
    assert again == space and again.size() == space.size()
    assert load_space(name) == space
    with pytest.raises(ConfigError, match="not a search space dictionary"):
        SearchSpace.from_dict({"name": "x"})
