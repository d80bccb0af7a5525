"""What can be searched: search-space definitions and the paper's variants as named presets.

* :class:`SearchSpace` / :class:`Dimension`: one definition of the choices; Optuna, Ray Tune,
  random sampling, enumeration and validation are derived from it.
* Built-in spaces: ``bimtdp`` (everything) and ``mini`` (144 architectures), by :func:`get_space`,
  which also reads a YAML restriction file.
* :data:`PRESETS` (name → Architecture) / :func:`get_preset` / :func:`preset_doc`: ``mtdp-fp``, ``bi-mtdp-f``, ``bi-mtdp-c``, ``bi-mtdp-naive``.
"""

from search_spaces._registry import SPACES, get_space, load_space, space_from_dict
from search_spaces._space import Dimension, SearchSpace
from search_spaces.presets import PRESETS, get_preset, preset_doc

__all__ = [
    "PRESETS",
    "SPACES",
    "Dimension",
    "SearchSpace",
    "get_preset",
    "preset_doc",
    "get_space",
    "load_space",
    "space_from_dict",
]
