"""The export's contract and `bimtdp predict` (issue 13 #17): what goes in, what comes out, as files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from _studies import small_export  # noqa: F401  (a session fixture)
from PIL import Image

from nas.cli import main
from nas.data import dataset_meta
from nas.data._common import normalise_images
from nas.deploy.export import MIN_SIDE, load_export, load_graph, verify_export
from nas.deploy.predict import input_size


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    """Two synthetic scenes as plain PNG files (what `bimtdp data preview` renders), one not a multiple of 32."""
    from nas.data.synth import render_scenes

    folder = tmp_path_factory.mktemp("images")
    scenes = render_scenes(0, "val", range(2), 100, 150)["image"]
    paths = [folder / f"scene{i}.png" for i in range(2)]
    for path, scene in zip(paths, scenes):
        Image.fromarray(scene).save(path)
    return paths


def test_manifest_and_readme_state_the_contract(small_export) -> None:
    manifest = verify_export(small_export)
    source = manifest["input"]
    assert source["mean"] == [0.485, 0.456, 0.406] and source["std"] == [0.229, 0.224, 0.225]
    assert source["side_multiple_of"] == 32 and source["min_side"] == MIN_SIDE == 64 and source["channels"] == 3
    outputs = manifest["outputs"]
    assert set(outputs) == {"semseg", "depth", "normals", "edges"} and outputs["semseg"]["channels"] == 6
    assert "logits" in outputs["semseg"]["raw"] and "NOT unit length" in outputs["normals"]["raw"]
    assert "sigmoid" in outputs["edges"]["raw"]
    readme = (small_export / "README.md").read_text()
    assert "README.md" in manifest["files"] and "mean [0.485, 0.456, 0.406]" in readme and "from 64 to 4096" in readme
    assert all(f"`{task}`" in readme for task in outputs) and "no key" in readme


def test_the_graph_takes_what_the_manifest_says(small_export) -> None:
    graph = load_graph(small_export)
    _, model = load_export(small_export)
    x = normalise_images(torch.randint(0, 256, (1, 3, MIN_SIDE, MIN_SIDE + 32), dtype=torch.uint8))
    with torch.no_grad():
        assert all(torch.allclose(graph(x)[t], y, atol=1e-5) for t, y in model(x).items())
        with pytest.raises(Exception):  # below min_side: refused by the graph's shape check, as documented
            graph(torch.zeros(1, 3, 32, 32))
        model(torch.zeros(1, 3, 32, 32))  # (the eager network takes it: the limit is the graph's)


def test_input_size_rounds_each_side_to_an_allowed_one() -> None:
    assert input_size(100, 150) == (96, 160)
    assert input_size(10, 5000) == (64, 4096)
    assert input_size(480, 640) == (480, 640)


def test_predict_writes_four_pictures_and_arrays_per_image(small_export, images, tmp_path, capsys) -> None:
    out = tmp_path / "preds"
    assert main(["predict", "--export", str(small_export), *map(str, images), "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [p["image"] for p in result["predictions"]] == list(map(str, images))
    first = result["predictions"][0]
    assert first["size"] == [100, 150] and first["network_input"] == [96, 160]
    assert len(list(out.iterdir())) == 2 * 4 * 2
    arrays = {task: np.load(files["npy"]) for task, files in first["outputs"].items()}
    assert arrays["semseg"].shape == (100, 150) and arrays["semseg"].dtype == np.int64
    assert 0 <= arrays["semseg"].min() and arrays["semseg"].max() < dataset_meta("synth").num_classes
    assert arrays["depth"].shape == (1, 100, 150)
    assert np.allclose(np.linalg.norm(arrays["normals"], axis=0), 1.0, atol=1e-4)  # decoded: unit normals
    assert arrays["edges"].shape == (1, 100, 150) and 0.0 <= arrays["edges"].min() and arrays["edges"].max() <= 1.0
    for files in first["outputs"].values():
        with Image.open(files["png"]) as picture:
            assert picture.size == (150, 100) and picture.mode == "RGB"

    # the same numbers as the eager network on the same prepared input
    _, model = load_export(small_export)
    rgb = np.array(Image.open(images[0]).convert("RGB"))
    x = torch.nn.functional.interpolate(normalise_images(torch.from_numpy(rgb).permute(2, 0, 1)[None]), size=(96, 160),
                                        mode="bilinear", align_corners=False, antialias=True)
    with torch.no_grad():
        logits = torch.nn.functional.interpolate(model(x)["semseg"], size=(100, 150), mode="bilinear", align_corners=False)
    assert np.array_equal(logits.argmax(1)[0].numpy(), arrays["semseg"])

    assert main(["predict", "--export", str(small_export), str(images[0]), "--out", str(out), "--size", "64"]) == 0
    assert "run at 64x64" in capsys.readouterr().out
    with Image.open(out / "scene0.depth.png") as picture:
        assert picture.size == (150, 100)


@pytest.mark.parametrize("case", ["missing image", "not an image", "not an export", "out is a file", "bad size"])
def test_predict_bad_input_is_one_line_and_writes_nothing(small_export, images, tmp_path, capsys, case) -> None:
    export, image, out = str(small_export), str(images[0]), tmp_path / "preds"
    if case == "missing image":
        image, needle = str(tmp_path / "nope.png"), "missing file"
    elif case == "not an image":
        (tmp_path / "text.png").write_text("hello")
        image, needle = str(tmp_path / "text.png"), "corrupt or unreadable file"
    elif case == "not an export":
        export, needle = str(tmp_path), "not an export"
    elif case == "out is a file":
        out = tmp_path / "file"
        out.write_text("keep")
        needle = "exists and is not a folder"
    else:
        needle = "--size takes one positive side or H W"
    size = ["--size", "1", "2", "3"] if case == "bad size" else []
    assert main(["predict", "--export", export, image, "--out", str(out), *size]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and "Traceback" not in err
    assert not (tmp_path / "preds").exists()
