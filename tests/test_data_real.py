"""NYUD-v2 and PASCAL-Context loaders on tiny fake trees in the exact layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _fake_data import H, W, make_nyud, make_pascal
from PIL import Image

from nas.data import dataset_meta, get_dataset, load_tensors
from nas.errors import ConfigError


@pytest.fixture()
def nyud(tmp_path) -> Path:
    return make_nyud(tmp_path)


@pytest.fixture()
def pascal(tmp_path) -> Path:
    return make_pascal(tmp_path)


def _check_common(image: torch.Tensor, targets: dict, tasks: tuple[str, ...], size=(H, W)) -> None:
    assert image.shape == (3, *size) and image.dtype == torch.float32
    assert set(targets) == set(tasks)
    if "depth" in targets:
        d = targets["depth"]
        assert d.shape == (1, *size) and d.dtype == torch.float32 and (d >= 0).all() and torch.isfinite(d).all()
    n = targets["normals"]
    assert n.shape == (3, *size) and n.dtype == torch.float32
    norm = n.norm(dim=0)
    assert ((norm - 1).abs() < 1e-4).logical_or(norm == 0).all()
    e = targets["edges"]
    assert e.shape == (1, *size) and set(e.unique().tolist()) <= {0.0, 1.0}


def test_nyud_item(nyud):
    ds = get_dataset("nyud", split="train", root=str(nyud))
    assert len(ds) == 3 and ds.meta == dataset_meta("nyud")
    image, t = ds[0]
    _check_common(image, t, ds.meta.task_names)
    raw = np.asarray(Image.open(nyud / "segmentation" / "0001.png"))
    s = t["semseg"]
    assert s.dtype == torch.int64 and s.shape == (H, W)
    assert s[0, 0] == 255 and s[0, 1] == 0 and s[0, 2] == 39  # 0 ignored, k -> k - 1
    assert torch.equal(s[torch.from_numpy(raw > 0)], torch.from_numpy(raw[raw > 0].astype(np.int64) - 1))
    assert t["depth"][0, 1, 0] == 0 and t["depth"][0, 1, 1] == 0  # zero and NaN -> invalid
    assert t["normals"][:, 2, 0].abs().sum() == 0


def test_nyud_parent_root_resize_size_and_tensors(nyud):
    ds = get_dataset("nyud", split="train", root=str(nyud.parent), resolution=(8, 10), size=2)
    images, targets = load_tensors(ds)
    assert images.shape == (2, 3, 8, 10) and targets["semseg"].shape == (2, 8, 10)
    _check_common(images[0], {k: v[0] for k, v in targets.items()}, ds.meta.task_names, size=(8, 10))
    assert set(targets["semseg"].unique().tolist()) <= set(range(40)) | {255}


def test_pascal_item(pascal):
    ds = get_dataset("pascal", split="train", root=str(pascal))
    assert len(ds) == 2
    for i in range(2):  # one semseg under VOC12, one under pascal-context
        image, t = ds[i]
        _check_common(image, t, ds.meta.task_names)
        s = t["semseg"]
        assert s.dtype == torch.int64 and set(s.unique().tolist()) == {0, 15, 255}
        p = t["parts"]
        assert p.dtype == torch.int64 and p.min() >= 0 and p.max() <= 6 and (p[:, : W // 2] == 0).all()
        sal = t["saliency"]
        assert sal.shape == (1, H, W) and set(sal.unique().tolist()) == {0.0, 1.0}
        assert sal[0, 0, -1] == 0 and sal[0, 1, -1] == 1  # binarised at 128
        assert t["normals"][:, 0, 0].abs().sum() == 0  # black pixel: invalid
        edges = t["edges"][0]
        assert edges[0, W // 2 - 1] == 1 and edges[0, 0] == 0  # the class boundary, one pixel
        assert edges[H // 2].sum() == 0  # nothing inside the void band


def test_pascal_needs_a_resolution_to_batch_mixed_sizes(pascal):
    Image.fromarray(np.zeros((H + 2, W, 3), np.uint8)).save(pascal / "JPEGImages" / "2008_000003.jpg")
    for folder in ("semseg/pascal-context", "human_parts", "sal_distill"):
        Image.fromarray(np.zeros((H + 2, W), np.uint8)).save(pascal / folder / "2008_000003.png")
    Image.fromarray(np.full((H + 2, W, 3), 128, np.uint8)).save(pascal / "normals_distill" / "2008_000003.png")
    with pytest.raises(ConfigError, match="resolution"):
        load_tensors(get_dataset("pascal", split="train", root=str(pascal)))
    images, _ = load_tensors(get_dataset("pascal", split="train", root=str(pascal), resolution=10))
    assert images.shape == (2, 3, 10, 10)


# ---- errors: one clear line naming the path and what was expected -------------------------------


def test_missing_root_and_folder(nyud, pascal, tmp_path):
    with pytest.raises(ConfigError, match="pass its root"):
        get_dataset("nyud", split="train")
    with pytest.raises(ConfigError, match=str(tmp_path / "nowhere")):
        get_dataset("nyud", split="train", root=str(tmp_path / "nowhere"))
    for sub in (nyud / "normals", pascal / "sal_distill"):
        sub.rename(sub.with_name("moved"))
    with pytest.raises(ConfigError, match=r"missing folder .*NYUD_MT/normals"):
        get_dataset("nyud", split="train", root=str(nyud))
    with pytest.raises(ConfigError, match=r"missing folder .*PASCAL_MT/sal_distill"):
        get_dataset("pascal", split="val", root=str(pascal))


def test_missing_file_named_in_split_list(nyud, pascal):
    (nyud / "depth" / "0002.npy").unlink()
    with pytest.raises(ConfigError, match=r"missing file .*depth/0002\.npy .*train\.txt"):
        get_dataset("nyud", split="train", root=str(nyud))
    (pascal / "ImageSets" / "Context" / "val.txt").write_text("2008_000010\nno_such_image\n")
    with pytest.raises(ConfigError, match=r"missing file .*JPEGImages/no_such_image\.jpg"):
        get_dataset("pascal", split="val", root=str(pascal))
    (pascal / "ImageSets" / "Context" / "train.txt").unlink()
    with pytest.raises(ConfigError, match=r"missing file .*train\.txt \(expected a split list"):
        get_dataset("pascal", split="train", root=str(pascal))


def test_human_parts_as_mat_is_reported(pascal):
    (pascal / "human_parts" / "2008_000010.png").rename(pascal / "human_parts" / "2008_000010.mat")
    with pytest.raises(ConfigError, match=r"2008_000010\.mat.*label PNGs"):
        get_dataset("pascal", split="val", root=str(pascal))


@pytest.mark.parametrize(
    "relative, content, match",
    [
        ("images/0001.jpg", b"not a jpeg", r"corrupt or unreadable file .*images/0001\.jpg \(expected an RGB image"),
        ("depth/0001.npy", b"garbage", r"corrupt or unreadable file .*depth/0001\.npy"),
        ("segmentation/0001.png", None, r"segmentation/0001\.png has 3 channel"),
        ("normals/0001.npy", None, r"normals/0001\.npy has shape \(12, 16\), expected a normal map"),
    ],
)
def test_corrupt_files_nyud(nyud, relative, content, match):
    path = nyud / relative
    if content is not None:
        path.write_bytes(content)
    elif path.suffix == ".png":
        Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(path)
    else:
        np.save(path, np.zeros((H, W), np.float32))
    ds = get_dataset("nyud", split="train", root=str(nyud))
    with pytest.raises(ConfigError, match=match):
        ds[0]


def test_out_of_range_labels_and_mismatched_sizes(nyud, pascal):
    Image.fromarray(np.full((H, W), 41, np.uint8)).save(nyud / "segmentation" / "0001.png")
    with pytest.raises(ConfigError, match=r"segmentation/0001\.png has label 41"):
        get_dataset("nyud", split="train", root=str(nyud))[0]
    np.save(nyud / "edge" / "0002.npy", np.zeros((H, W + 1), np.float32))
    with pytest.raises(ConfigError, match=r"edges of image '0002' is \(12, 17\)"):
        get_dataset("nyud", split="train", root=str(nyud))[1]
    Image.fromarray(np.full((H, W), 9, np.uint8)).save(pascal / "human_parts" / "2008_000010.png")
    with pytest.raises(ConfigError, match=r"human_parts/2008_000010\.png has label 9"):
        get_dataset("pascal", split="val", root=str(pascal))[0]


def test_generator_options_rejected_for_data_read_from_disk(nyud):
    with pytest.raises(ConfigError, match="apply to generated datasets only"):
        get_dataset("nyud", split="train", root=str(nyud), cache_dir="/tmp/x")
