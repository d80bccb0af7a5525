"""``synth``: procedurally rendered rooms with exact labels for NYUD-v2's four tasks.

Why synthetic: a search must run out of the box, and its multi-task interactions must be real:
normals follow from depth, edges from objects and depth, and classes from shape (textures and
colours are drawn independently of the class). Rendering is done by :mod:`nas.data._render`.

Determinism and splits: scene ``i`` of split ``s`` is drawn from its own random stream,
``SeedSequence([seed, scene_id])`` with ``scene_id = i`` for train and ``2**40 + i`` for val, so a
scene never depends on the batch it was rendered in, and the splits never share a scene.

Caching: scenes are rendered in chunks of :data:`CHUNK` consecutive indices. Each chunk is kept
in memory (a small per-process LRU) and, when ``cache_dir`` is given, in an ``.npz`` whose name
holds every input of the pictures: generator version, seed, split, index range and resolution.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from nas.data._common import DenseDataset, check_split, normalise_images, parse_resolution
from nas.data._io import atomic_save_npz
from nas.data._meta import dataset_meta
from nas.data._render import GENERATOR_VERSION, N_UNIFORMS, Rendered, render_batch
from nas.errors import ConfigError

__all__ = ["CHUNK", "DEFAULT_SIZE", "SynthDataset", "render_scenes"]

CHUNK = 256
DEFAULT_SIZE = {"train": 1000, "val": 250}
_VAL_OFFSET = 2**40
_PIXELS_PER_BATCH = 64 * 64 * 64  # bounds the renderer's working memory (~100 MB)
_FIELDS = ("image", "semseg", "depth", "normals", "edges", "instance")


def scene_id(split: str, index: int) -> int:
    return index + (_VAL_OFFSET if split == "val" else 0)


def render_scenes(seed: int, split: str, indices: range, height: int, width: int) -> dict[str, np.ndarray]:
    """Render scenes ``indices`` of ``split``: arrays named as :class:`~nas.data._render.Rendered`."""
    uniforms = np.empty((len(indices), N_UNIFORMS), np.float64)
    noise = np.empty((len(indices), height, width, 3), np.float32)
    for row, index in enumerate(indices):
        rng = np.random.default_rng([seed, scene_id(split, index)])
        uniforms[row] = rng.random(N_UNIFORMS)
        noise[row] = rng.standard_normal((height, width, 3), dtype=np.float32)
    step = max(1, _PIXELS_PER_BATCH // (height * width))
    parts: list[Rendered] = [
        render_batch(uniforms[a : a + step], height, width, noise=noise[a : a + step])
        for a in range(0, len(indices), step)
    ]
    return {f: np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS}


def _cache_path(cache_dir: str, seed: int, split: str, start: int, stop: int, h: int, w: int) -> Path:
    name = f"synth-v{GENERATOR_VERSION}-seed{seed}-{split}-{start}-{stop}-{h}x{w}.npz"
    return Path(cache_dir) / name


@functools.lru_cache(maxsize=8)
def _chunk(seed: int, split: str, start: int, stop: int, h: int, w: int, cache_dir: str | None):
    if cache_dir is not None:
        path = _cache_path(cache_dir, seed, split, start, stop, h, w)
        if path.is_file():
            try:
                with np.load(path) as data:
                    arrays = {f: data[f] for f in _FIELDS}
                if len(arrays["image"]) == stop - start:
                    return arrays
            except (OSError, ValueError, KeyError, EOFError):
                pass  # a damaged cache file is simply rendered again and replaced
    arrays = render_scenes(seed, split, range(start, stop), h, w)
    if cache_dir is not None:
        atomic_save_npz(path, **arrays)
    return arrays


class SynthDataset(DenseDataset):
    """The embedded synthetic dataset (tasks semseg, depth, normals, edges; no unlabelled pixels).

    Args:
        split: ``train`` or ``val``.
        resolution: (H, W) or a side; None renders at the cost resolution (256×256).
        size: number of scenes; None uses :data:`DEFAULT_SIZE`.
        seed: the dataset seed; the same seed gives the same scenes on any machine.
        cache_dir: where rendered chunks are kept on disk; None keeps them in memory only.
    """

    def __init__(
        self,
        *,
        split: str,
        resolution: tuple[int, int] | int | None = None,
        size: int | None = None,
        seed: int = 0,
        cache_dir: str | None = None,
    ) -> None:
        self.meta = dataset_meta("synth")
        self.split = check_split(split)
        self.resolution = parse_resolution(resolution) or self.meta.cost_resolution
        self.size = DEFAULT_SIZE[split] if size is None else int(size)
        if self.size < 1:
            raise ConfigError(f"size must be >= 1, got {size}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed = int(seed)
        self.cache_dir = None if cache_dir is None else str(cache_dir)

    def __len__(self) -> int:
        return self.size

    def _chunk_of(self, index: int) -> tuple[dict[str, np.ndarray], int]:
        start = index - index % CHUNK
        stop = min(start + CHUNK, self.size)
        return _chunk(self.seed, self.split, start, stop, *self.resolution, self.cache_dir), index - start

    def arrays(self) -> dict[str, np.ndarray]:
        """Every raw array of the split (uint8 images HWC, labels, instance map), for analysis."""
        chunks = [self._chunk_of(a)[0] for a in range(0, self.size, CHUNK)]
        return {f: np.concatenate([c[f] for c in chunks]) for f in _FIELDS}

    def instance(self, index: int) -> np.ndarray:
        """Instance map of one scene (0 floor, 1 back wall, 2-3 side walls, 4+ objects)."""
        chunk, row = self._chunk_of(self._check(index))
        return chunk["instance"][row]

    def _check(self, index: int) -> int:
        if not -self.size <= index < self.size:
            raise IndexError(f"index {index} out of range for {self.size} scenes")
        return index % self.size

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Tensor]]:
        chunk, row = self._chunk_of(self._check(index))
        # A copy: tensors from_numpy share memory, and the chunk is cached for other datasets.
        images, targets = _to_tensors({f: chunk[f][row : row + 1].copy() for f in _FIELDS})
        return images[0], {k: v[0] for k, v in targets.items()}

    def as_tensors(self) -> tuple[Tensor, dict[str, Tensor]]:
        """The whole split as ``(images [N, 3, H, W], {task: [N, ...]})``, with no per-item cost."""
        return _to_tensors(self.arrays())


def _to_tensors(a: dict[str, np.ndarray]) -> tuple[Tensor, dict[str, Tensor]]:
    images = normalise_images(torch.from_numpy(a["image"]).permute(0, 3, 1, 2))
    targets = {
        "semseg": torch.from_numpy(a["semseg"]).long(),
        "depth": torch.from_numpy(a["depth"]).float()[:, None],
        "normals": torch.from_numpy(a["normals"]).float().permute(0, 3, 1, 2).contiguous(),
        "edges": torch.from_numpy(a["edges"]).float()[:, None],
    }
    return images.contiguous(), targets
