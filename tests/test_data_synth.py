"""The embedded synthetic dataset: contract, exact geometry of its labels, determinism, cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nas.data import dataset_meta, get_dataset, load_tensors
from nas.data import synth as synth_module
from nas.data._render import _HFOV_DEG, CLASS_NAMES
from nas.errors import ConfigError


@pytest.fixture(scope="module")
def train48():
    return get_dataset("synth", split="train", resolution=48, size=24, seed=3)


def test_meta_without_data():
    meta = dataset_meta("synth")
    assert meta.task_names == ("semseg", "depth", "normals", "edges")
    assert meta.cost_resolution == (256, 256) and meta.ignore_index == 255
    assert meta.num_classes == len(CLASS_NAMES) == meta.task("semseg").channels
    assert meta.task("depth").group == "geometric" and meta.task("semseg").group == "semantic"
    with pytest.raises(ConfigError, match="synth, nyud, pascal"):
        dataset_meta("cityscapes")


def test_item_contract(train48):
    image, targets = train48[0]
    assert train48.meta.name == "synth" and len(train48) == 24
    assert image.shape == (3, 48, 48) and image.dtype == torch.float32
    assert -3 < image.min() and image.max() < 3  # normalised, not 0..255
    assert targets["semseg"].shape == (48, 48) and targets["semseg"].dtype == torch.int64
    assert targets["semseg"].min() >= 0 and targets["semseg"].max() < len(CLASS_NAMES)
    assert targets["depth"].shape == (1, 48, 48) and (targets["depth"] > 0).all()
    assert targets["normals"].shape == (3, 48, 48)
    assert torch.allclose(targets["normals"].norm(dim=0), torch.ones(48, 48), atol=1e-5)
    assert targets["edges"].shape == (1, 48, 48) and set(targets["edges"].unique().tolist()) <= {0.0, 1.0}


def test_as_tensors_matches_items(train48):
    images, targets = load_tensors(train48)
    assert images.shape == (24, 3, 48, 48)
    for i in (0, 23):
        image, t = train48[i]
        assert torch.equal(images[i], image)
        assert all(torch.equal(targets[k][i], t[k]) for k in t)


def test_scenes_have_objects_and_both_room_classes(train48):
    a = train48.arrays()
    for semseg in a["semseg"]:
        present = set(np.unique(semseg).tolist())
        assert {0, 1} <= present  # wall and floor
    objects = a["semseg"] >= 2
    assert 0.05 < objects.mean() < 0.6  # objects are neither absent nor filling the picture
    assert set(np.unique(a["semseg"]).tolist()) == set(range(len(CLASS_NAMES)))


def test_normals_face_the_camera_and_follow_from_depth():
    """Back-project depth to points; normals from their finite differences must match the labels."""
    height = width = 96
    a = synth_module.render_scenes(0, "train", range(4), height, width)
    fx = width / (2 * np.tan(np.deg2rad(_HFOV_DEG) / 2))
    jj, ii = np.meshgrid(np.arange(width) + 0.5 - width / 2, np.arange(height) + 0.5 - height / 2)
    errors = []
    for depth, normals, inst in zip(a["depth"], a["normals"], a["instance"]):
        rays = np.stack([jj / fx, ii / fx, np.ones_like(jj)], axis=-1)
        assert ((normals * rays).sum(-1) < 1e-4).all()  # facing the camera
        points = rays * depth[..., None]
        du = points[1:-1, 2:] - points[1:-1, :-2]
        dv = points[2:, 1:-1] - points[:-2, 1:-1]
        est = np.cross(dv, du)
        est /= np.linalg.norm(est, axis=-1, keepdims=True)
        core = inst[1:-1, 1:-1]
        same = (
            (inst[1:-1, 2:] == core) & (inst[1:-1, :-2] == core) & (inst[2:, 1:-1] == core) & (inst[:-2, 1:-1] == core)
        )
        cos = (est * normals[1:-1, 1:-1]).sum(-1)[same]
        errors.append(np.degrees(np.arccos(np.clip(np.abs(cos), -1, 1))))
    errors = np.concatenate(errors)
    assert np.median(errors) < 1.0 and np.mean(errors < 10) > 0.95


def test_edges_are_instance_boundaries():
    a = synth_module.render_scenes(1, "val", range(3), 40, 40)
    inst, edges = a["instance"], a["edges"].astype(bool)
    boundary = np.zeros_like(edges)
    boundary[:, :, :-1] |= inst[:, :, :-1] != inst[:, :, 1:]
    boundary[:, :-1] |= inst[:, :-1] != inst[:, 1:]
    assert (edges == boundary).all()  # exactly the instance boundaries (they hold every depth jump)
    assert 0.01 < edges.mean() < 0.2  # one pixel wide, not blobs


def test_deterministic_per_seed_and_index_whatever_the_batch():
    whole = synth_module.render_scenes(5, "train", range(0, 6), 32, 32)
    part = synth_module.render_scenes(5, "train", range(4, 6), 32, 32)
    for field in whole:
        assert np.array_equal(whole[field][4:], part[field])
    other = synth_module.render_scenes(6, "train", range(0, 2), 32, 32)
    assert not np.array_equal(whole["image"][:2], other["image"])


def test_same_seed_same_data_in_a_fresh_process(tmp_path):
    import subprocess
    import sys

    code = (
        "import numpy as np; from nas.data.synth import render_scenes as r; "
        f"np.save({str(tmp_path / 'x.npy')!r}, r(9, 'val', range(3), 24, 24)['image'])"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert np.array_equal(np.load(tmp_path / "x.npy"), synth_module.render_scenes(9, "val", range(3), 24, 24)["image"])


def test_train_and_val_never_share_a_scene():
    train = synth_module.render_scenes(0, "train", range(20), 24, 24)["image"]
    val = synth_module.render_scenes(0, "val", range(20), 24, 24)["image"]
    flat_t, flat_v = train.reshape(20, -1), val.reshape(20, -1)
    assert not any((flat_t[i] == flat_v[j]).all() for i in range(20) for j in range(20))


def test_any_resolution_and_int_or_pair():
    image, t = get_dataset("synth", split="val", resolution=(24, 40), size=2)[1]
    assert image.shape == (3, 24, 40) and t["semseg"].shape == (24, 40)
    assert get_dataset("synth", split="val", resolution=16, size=1)[0][0].shape == (3, 16, 16)


def test_disk_cache_is_written_keyed_and_reused(tmp_path, monkeypatch):
    synth_module._chunk.cache_clear()
    ds = get_dataset("synth", split="train", resolution=32, size=5, seed=2, cache_dir=str(tmp_path))
    first = ds.as_tensors()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["synth-v1-seed2-train-0-5-32x32.npz"]
    synth_module._chunk.cache_clear()

    def no_render(*args, **kwargs):
        raise AssertionError("rendered again although the cache holds this chunk")

    monkeypatch.setattr(synth_module, "render_scenes", no_render)
    again = get_dataset("synth", split="train", resolution=32, size=5, seed=2, cache_dir=str(tmp_path)).as_tensors()
    assert torch.equal(first[0], again[0])
    synth_module._chunk.cache_clear()


def test_items_do_not_alias_the_cache():
    ds = get_dataset("synth", split="train", resolution=16, size=2, seed=11)
    ds[0][1]["depth"].fill_(-1.0)
    assert (ds[0][1]["depth"] > 0).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"split": "test"}, "split"),
        ({"split": "train", "size": 0}, "size"),
        ({"split": "train", "resolution": (4, 4)}, "resolution"),
        ({"split": "train", "resolution": "big"}, "resolution"),
        ({"split": "train", "root": "/data"}, "no root"),
        ({"split": "train", "seed": -1}, "seed"),
    ],
)
def test_bad_arguments_are_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        get_dataset("synth", **kwargs)
