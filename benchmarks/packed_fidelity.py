"""How closely the packed network reproduces the emulated one: max |difference| per task.

For each trained network given (an export folder, or a `bimtdp train --out` folder: arch.json +
weights.pt) the emulated network (as trained) and its packed copy predict the same synth
validation scenes at the dataset's cost resolution; printed per task: the largest absolute
difference of the predictions, the largest prediction (for scale), and how many semseg pixels
change class. Without trained weights (``--preset``), weights are drawn at seed 0.

Run: .venv/bin/python benchmarks/packed_fidelity.py DIR [DIR ...] [--preset NAME ...] [--images 8]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from nas.data import dataset_meta, get_dataset
from nas.model.arch import load_architecture
from nas.model.builder import build
from nas.runtime import kernels
from nas.runtime.packed import fusion_summary, pack_model
from search_spaces import get_preset


def _networks(args: argparse.Namespace, tasks) -> list[tuple[str, torch.nn.Module]]:
    found = []
    for folder in map(Path, args.trained):
        arch = load_architecture(folder / "arch.json")
        model = build(arch, tasks)
        model.load_state_dict(torch.load(folder / "weights.pt", map_location="cpu", weights_only=True))
        found.append((f"{folder.name} ({arch.id})", model))
    for name in args.preset:
        torch.manual_seed(0)
        found.append((f"{name} (untrained)", build(get_preset(name), tasks)))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trained", nargs="*", help="folders holding arch.json and weights.pt")
    parser.add_argument("--preset", action="append", default=[])
    parser.add_argument("--images", type=int, default=8)
    args = parser.parse_args()

    meta = dataset_meta("synth")
    images, _ = get_dataset("synth", split="val", size=args.images).as_tensors()
    print(f"{args.images} synth val scenes at {tuple(images.shape[-2:])}; kernels {kernels.isa()}")
    for label, model in _networks(args, meta.tasks):
        model.eval()
        packed = pack_model(model)
        with torch.no_grad():
            want = {t: [] for t in meta.task_names}
            got = {t: [] for t in meta.task_names}
            for image in images.split(1):
                for out, net in ((want, model), (got, packed)):
                    for task, value in net(image).items():
                        out[task].append(value)
        want = {t: torch.cat(v) for t, v in want.items()}
        got = {t: torch.cat(v) for t, v in got.items()}
        print(f"\n{label}: {fusion_summary(packed)}")
        for task in meta.task_names:
            difference = float((want[task] - got[task]).abs().max())
            print(f"  {task:<8} max |packed - emulated| {difference:.3g}   (max |prediction| {float(want[task].abs().max()):.3g})")
        changed = (want["semseg"].argmax(1) != got["semseg"].argmax(1)).float().mean()
        print(f"  semseg pixels whose class changes: {100 * float(changed):.4f} %")


if __name__ == "__main__":
    main()
