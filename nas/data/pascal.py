"""``pascal``: PASCAL-Context in the multi-task layout of Vandenhende et al. (``PASCAL_MT``).

Layout (the user's folder, read-only)::

    PASCAL_MT/JPEGImages/<id>.jpg                RGB
    PASCAL_MT/semseg/VOC12/<id>.png              21 classes (0 background), 255 unlabelled;
        or PASCAL_MT/semseg/pascal-context/<id>.png   (the first that exists, as the reference)
    PASCAL_MT/human_parts/<id>.png               0 background, 1..6 parts, 255 unlabelled
    PASCAL_MT/normals_distill/<id>.png           RGB, n = 2·v/255 − 1
    PASCAL_MT/sal_distill/<id>.png               grey, binarised at 128 (as the reference)
    PASCAL_MT/ImageSets/Context/{train,val}.txt  one id per line

Readings that differ from the reference loader (Multi-Task-Learning-PyTorch
``data/pascal_context.py``), because its sources are MATLAB ``.mat`` files and this project does
not depend on scipy:

- human parts: the reference rasterises ``human_parts/<id>.mat`` (PASCAL-Part annotations) into 6
  parts; we read a label PNG of the same 7 values per image (convert once; a ``.mat`` in its place
  is reported as such).
- edges: the reference takes the Laplacian of the 459-class Context label map
  (``pascal-context/trainval/<id>.mat``); we derive one-pixel boundaries from the semseg PNG, so
  boundaries between two background (Context-only) categories are absent.
- normals: the reference keeps distilled normals only on categories NYUD also has (read from the
  same ``.mat``); we keep every pixel except pure-black (0, 0, 0) and mid-grey (≈ zero vector) ones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nas.data._files import FileDataset, clean_normals, find_root, label_edges
from nas.data._io import read_image, read_png, require_dir
from nas.data._meta import PART_NAMES, dataset_meta
from nas.errors import ConfigError

__all__ = ["PascalDataset"]

_LAYOUT = (
    "JPEGImages/*.jpg, semseg/{VOC12,pascal-context}/*.png, human_parts/*.png, normals_distill/*.png, "
    "sal_distill/*.png, ImageSets/Context/{train,val}.txt"
)
_FOLDERS = {
    "JPEGImages": "RGB images <id>.jpg",
    "semseg": "semseg/VOC12/<id>.png or semseg/pascal-context/<id>.png label PNGs",
    "human_parts": "human part label PNGs <id>.png (0..6)",
    "normals_distill": "RGB normal PNGs <id>.png",
    "sal_distill": "grey saliency PNGs <id>.png",
    "ImageSets/Context": "split lists train.txt and val.txt",
}


class PascalDataset(FileDataset):
    """PASCAL-Context (4998 train / 5105 val): semseg (21), human parts (7), saliency, normals, edges.

    Args:
        root: the ``PASCAL_MT`` folder (or its parent).
        split: ``train`` or ``val``.
        resolution: resize everything to (H, W) (or a side); None keeps each image's size, which
            varies (batching then needs a resolution; the literature uses 512×512).
        size: use only the first ``size`` images of the split list.
    """

    def __init__(
        self,
        *,
        root: str | None,
        split: str,
        resolution: tuple[int, int] | int | None = None,
        size: int | None = None,
    ) -> None:
        self.meta = dataset_meta("pascal")
        path = find_root(root, "PASCAL_MT", "pascal", _LAYOUT)
        for folder, what in _FOLDERS.items():
            require_dir(path / folder, f"{what}; layout PASCAL_MT/{_LAYOUT}")
        super().__init__(path, split=split, resolution=resolution, size=size)

    def _split_file(self) -> Path:
        return self.root / "ImageSets" / "Context" / f"{self.split}.txt"

    def _paths(self, image_id: str) -> dict[str, Path]:
        r = self.root
        semseg = r / "semseg" / "VOC12" / f"{image_id}.png"
        if not semseg.is_file() and (r / "semseg" / "pascal-context" / f"{image_id}.png").is_file():
            semseg = r / "semseg" / "pascal-context" / f"{image_id}.png"
        parts = r / "human_parts" / f"{image_id}.png"
        mat = parts.with_suffix(".mat")
        if not parts.is_file() and mat.is_file():
            raise ConfigError(
                f"found {mat} but human parts are read from label PNGs ({parts}, values 0..6, 255 "
                "unlabelled): convert the PASCAL-Part .mat annotations once (this project does not read .mat)"
            )
        return {
            "image": r / "JPEGImages" / f"{image_id}.jpg",
            "semseg": semseg,
            "parts": parts,
            "normals": r / "normals_distill" / f"{image_id}.png",
            "saliency": r / "sal_distill" / f"{image_id}.png",
        }

    def _labels(self, path: Path, classes: int, what: str) -> np.ndarray:
        labels = read_png(path, f"a single-channel label PNG with {what}", channels=1).astype(np.int64)
        bad = (labels >= classes) & (labels != self.meta.ignore_index)
        if bad.any():
            raise ConfigError(f"file {path} has label {labels[bad].max()}, expected {what}")
        return labels

    def _load(self, files: dict[str, Path]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        ignore = self.meta.ignore_index
        image = read_image(files["image"])
        semseg = self._labels(files["semseg"], self.meta.num_classes, f"values 0..20 or {ignore}")
        parts = self._labels(files["parts"], len(PART_NAMES), f"values 0..{len(PART_NAMES) - 1} or {ignore}")
        encoded = read_png(files["normals"], "an RGB normal PNG (3 channels)", channels=3).astype(np.float32)
        normals = 2.0 * encoded / 255.0 - 1.0
        normals[(encoded == 0).all(axis=-1)] = 0.0
        saliency = read_png(files["saliency"], "a single-channel saliency PNG", channels=1)
        return image, {
            "semseg": semseg,
            "parts": parts,
            "saliency": (saliency >= 128).astype(np.float32),
            "normals": clean_normals(normals),
            "edges": label_edges(semseg, ignore),
        }
