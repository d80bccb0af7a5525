"""Look at a dataset: a montage of images and their task labels.

examples:
  bimtdp data preview --dataset synth --out synth.png
  bimtdp data preview --dataset synth --resolution 64 --count 8 --split val --out val64.png
  bimtdp data preview --dataset nyud --data-root /data/NYUD_MT --resolution 240 320 --out nyud.png --json
"""

from __future__ import annotations

import argparse
import json

from nas.cli._options import add_dataset, add_subverb

__all__ = ["add_arguments", "run"]

#: The side a generated dataset is rendered at for a preview (it would render at its cost resolution).
PREVIEW_SIDE = 128


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_verb", metavar="SUBVERB", required=True)
    p = add_subverb(
        sub, "preview",
        help="write a PNG montage of images and their labels",
        description="Write a PNG montage: one row per image, columns image + each task's label.",
        examples="  bimtdp data preview --dataset synth --out synth.png\n"
                 "  bimtdp data preview --dataset synth --resolution 64 --count 8 --split val --out val64.png\n"
                 "  bimtdp data preview --dataset nyud --data-root /data/NYUD_MT --resolution 240 320 --out nyud.png --json\n",
    )
    add_dataset(p)
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--split", default="train", help="train or val (default train)")
    p.add_argument("--count", type=int, default=6, help="images to show (default 6)")
    p.add_argument(
        "--resolution", type=int, nargs="+", default=None, metavar="N",
        help=f"side, or H W (default: generated datasets such as synth {PREVIEW_SIDE}, others as stored)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="generated datasets (synth): which scenes (default 0)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nas.data import dataset_meta, get_dataset
    from nas.data.preview import preview_panels, save_montage
    from nas.errors import ConfigError

    if args.count < 1:
        raise ConfigError(f"--count must be >= 1, got {args.count}")
    if args.resolution is not None and len(args.resolution) not in (1, 2):
        raise ConfigError(f"--resolution takes one side or H W, got {args.resolution}")
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise ConfigError(f"--out must be a .png file, got {args.out}")
    generated = dataset_meta(args.dataset).generated
    resolution = args.resolution
    if resolution is None and generated:
        resolution = [PREVIEW_SIDE]
    if resolution is not None:
        resolution = resolution[0] if len(resolution) == 1 else tuple(resolution)
    options = {"seed": args.seed} if generated else {}
    dataset = get_dataset(
        args.dataset, split=args.split, root=args.data_root, resolution=resolution, size=args.count, **options
    )
    titles, rows = preview_panels(dataset, args.count)
    save_montage(titles, rows, out, title=f"{args.dataset} / {args.split}")
    result = {
        "out": str(out),
        "dataset": args.dataset,
        "split": args.split,
        "images": len(rows),
        "tasks": list(dataset.meta.task_names),
        "resolution": list(rows[0][0].shape[:2]),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"wrote {out}: {len(rows)} {args.dataset} images with {', '.join(result['tasks'])}")
    return 0
