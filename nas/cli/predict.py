"""Run an exported network on images: the four predictions as pictures (PNG) and arrays (.npy).

For each IMAGE it writes, per task, <stem>.<task>.png and <stem>.<task>.npy into --out (default:
./predictions): semseg as a colour map (the .npy holds class indices), depth as a colour map with
near bright (.npy: depth), normals as RGB = (n + 1) / 2 (.npy: unit vectors), edges as grey
probability (.npy: probability). The image is read as RGB, ImageNet-normalised and resized so each
side is a multiple of 32 in [64, 4096] (its own size, or --size); predictions are resized back to
the image's size. A network sees best at the resolution it was trained at: 64 px for the smoke,
quick and proxy fidelities, 128 for full (--size 64 for a searched export). The
network is rebuilt from the export's weights.pt (loaded with weights_only=True): nothing in the
folder is executed.

examples:
  bimtdp data preview --dataset synth --out scenes.png
  bimtdp predict --export results/demo/exports/3f2a9c1d07 scenes.png --size 64
  bimtdp predict --export results/demo/exports/3f2a9c1d07 a.jpg b.png --out preds/ --json
"""

from __future__ import annotations

import argparse

from nas.cli._options import add_json, print_json

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--export", required=True, metavar="DIR", help="an export folder (results/<study>/exports/<id>)")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, ... anything Pillow reads)")
    parser.add_argument("--size", type=int, nargs="+", metavar="N",
                        help="network input side, or H W (rounded to multiples of 32 in [64, 4096]; default: the image's)")
    parser.add_argument("--out", default="predictions", metavar="DIR", help="where to write (default: ./predictions)")
    add_json(parser)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nas.deploy.predict import predict_image, read_image, write_prediction
    from nas.errors import ConfigError

    if args.size is not None and (len(args.size) not in (1, 2) or min(args.size) < 1):
        raise ConfigError(f"--size takes one positive side or H W, got {args.size}")
    size = None if args.size is None else (args.size[0], args.size[-1])
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder")
    images = [(Path(p), read_image(p)) for p in args.images]  # every image is checked before any work

    from nas.data import dataset_meta
    from nas.deploy.export import load_export, verify_export

    manifest = verify_export(args.export)
    arch, model = load_export(args.export)
    meta = dataset_meta(manifest.get("dataset", "synth"))
    classes = {spec.name: spec.channels for spec in meta.tasks}
    results = []
    for path, rgb in images:
        prediction = predict_image(model, rgb, meta.task_names, path=path, size=size)
        files = write_prediction(prediction, out, num_classes=classes, ignore_index=meta.ignore_index)
        results.append({"image": str(path), "size": list(prediction.size), "network_input": list(prediction.network_size),
                        "outputs": files})
    if args.json:
        print_json({"export": str(args.export), "arch_id": arch.id, "dataset": meta.name, "predictions": results})
        return 0
    for result in results:
        h, w = result["size"]
        print(f"{result['image']} ({h}x{w}, run at {result['network_input'][0]}x{result['network_input'][1]}):")
        for task, files in result["outputs"].items():
            print(f"  {task:<9} {files['png']}  {files['npy']}")
    print(f"{len(results)} image(s) predicted by {arch.id} ({meta.name}) into {out}/")
    return 0
