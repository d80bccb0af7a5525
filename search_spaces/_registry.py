"""Spaces by name or by YAML file: ``get_space("mini")``, ``get_space("my_space.yaml")``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from nas.errors import ConfigError
from search_spaces._space import SearchSpace

__all__ = ["SPACES", "get_space", "load_space", "space_from_dict"]


def _bimtdp() -> SearchSpace:
    from search_spaces.bimtdp import BIMTDP

    return BIMTDP


def _mini() -> SearchSpace:
    from search_spaces.mini import MINI

    return MINI


#: name -> factory of a built-in space.
SPACES: dict[str, Callable[[], SearchSpace]] = {"bimtdp": _bimtdp, "mini": _mini}

_YAML_KEYS = ("base", "name", "fix", "choices")


def get_space(name_or_path: str | os.PathLike[str]) -> SearchSpace:
    """A built-in space by name, or a restriction of one read from a ``.yaml``/``.yml`` file.

    Raises:
        ConfigError: an unknown name, or a bad file (see :func:`load_space`).
    """
    text = str(name_or_path)
    if text in SPACES:
        return SPACES[text]()
    if text.lower().endswith((".yaml", ".yml")):
        return _read_yaml(text)
    raise ConfigError(f"unknown search space {text!r}; choose one of {sorted(SPACES)} or give a .yaml file")


#: The same as :func:`get_space`: a built-in name or a YAML file.
load_space = get_space


def _read_yaml(path: str | os.PathLike[str]) -> SearchSpace:
    """Read a space file (parsed with ``yaml.safe_load``); see :func:`space_from_dict` for the keys."""
    import yaml

    from nas.results import read_user_text

    path = Path(path)
    text = read_user_text(path, "space file")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {str(error).splitlines()[0]}") from None
    try:
        return space_from_dict(data, default_name=path.stem)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def space_from_dict(data: Any, *, default_name: str = "custom") -> SearchSpace:
    """A space from its dictionary form::

        base: bimtdp            # a built-in space to start from (default: bimtdp)
        name: no-binary-heads   # optional (default: the file name)
        fix:                    # dimension -> its only value
          binarize.heads: false
          decoder.sharing: grouped
        choices:                # dimension -> the values it may take
          width: [0.25, 0.5]

    Values are checked against the genotype (any valid value is allowed, not only the base's).

    Raises:
        ConfigError: an unknown key or dimension, a dimension both fixed and given choices, a bad value.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"a space file holds a mapping with keys {list(_YAML_KEYS)}, got {type(data).__name__}")
    unknown = [k for k in data if k not in _YAML_KEYS]
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r}; allowed: {list(_YAML_KEYS)}")
    base_name = data.get("base", "bimtdp")
    if base_name not in SPACES:
        raise ConfigError(f"base: unknown space {base_name!r}; choose one of {sorted(SPACES)}")
    fix = data.get("fix") or {}
    choices = data.get("choices") or {}
    for key, value in (("fix", fix), ("choices", choices)):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping of dimension -> value(s), got {value!r}")
    both = sorted(set(fix) & set(choices))
    if both:
        raise ConfigError(f"{both[0]}: given under both 'fix' and 'choices'")
    merged = {**{k: [v] for k, v in fix.items()}, **choices}
    name = data.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"name: expected a non-empty string, got {name!r}")
    return SPACES[base_name]().with_choices(merged, name=name)
