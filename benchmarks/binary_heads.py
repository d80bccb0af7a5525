"""What does a binary depth head output? The depth maps of architectures with binary heads.

Trains the proxy-quality study's architectures that binarize their heads (``--arch-seed 0``:
``s05``/``s06``/``s07`` without a weight scale, ``s01`` and ``bi-mtdp-naive`` with it) and, on the
validation scenes, describes the depth head: its binary conv's output (a sum of ±1 products, or
mean|W|·that with the channel scale), how many distinct values it takes and how often it sits at
its ends ±C·scale, and the final depth map against the target (mean, spread, correlation, RMSE).

Run it on the code before and after a change to the heads to see what the change did (it imports
``nas`` from PYTHONPATH, so ``PYTHONPATH=<another checkout>`` describes that checkout's heads)::

    PYTHONPATH=$PWD .venv/bin/python benchmarks/binary_heads.py --threads 1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from nas.training.fidelity import get_fidelity
from nas.training.teacher import Teacher
from nas.training.train import fit, load_data, set_threads

sys.path.insert(1, str(Path(__file__).resolve().parent))  # after PYTHONPATH: proxy_quality's sample
from proxy_quality import architectures  # noqa: E402


@torch.no_grad()
def describe(model: torch.nn.Module, images: torch.Tensor, depth: torch.Tensor) -> dict[str, float]:
    """The depth head's conv output and final prediction on ``images`` (eval mode)."""
    head = model.heads["depth"]
    seen: list[torch.Tensor] = []
    handle = head.conv.register_forward_hook(lambda m, i, o: seen.append(o - (m.bias.view(1, -1, 1, 1) if m.bias is not None else 0)))
    model.eval()
    pred = model(images)["depth"]
    handle.remove()
    raw = seen[0]
    weight = head.conv.weight
    scale = weight.abs().mean() if getattr(head.conv, "weight_scale", "") == "channel" else torch.tensor(1.0)
    ends = weight[0].numel() * scale
    valid = depth > 0
    p, t = pred[valid], depth[valid]
    return {
        "C": float(weight[0].numel()),
        "raw_min": float(raw.min()), "raw_max": float(raw.max()), "raw_std": float(raw.std()),
        "raw_values": float(raw.unique().numel()),
        "at_ends": float((raw.abs() >= ends - 1e-4).float().mean()),
        "pred_mean": float(p.mean()), "pred_std": float(p.std()),
        "target_mean": float(t.mean()), "target_std": float(t.std()),
        "corr": float(torch.corrcoef(torch.stack([p, t]))[0, 1]),
        "rmse": float((p - t).pow(2).mean().sqrt()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fidelity", default="proxy")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", nargs="+", help="name prefixes of the architectures to train (default: all with binary heads)")
    parser.add_argument("--teacher-dir", default="/tmp/bimtdp-binary-heads-teacher")
    parser.add_argument("--cache-dir", default="/tmp/bimtdp-synth-cache")
    args = parser.parse_args()
    set_threads(args.threads)
    fidelity = get_fidelity(args.fidelity)
    train, val = load_data("synth", fidelity, cache_dir=args.cache_dir)
    teacher = Teacher.load_or_train(Path(args.teacher_dir) / f"{fidelity.name}-seed{args.seed}", train, val, fidelity,
                                    seed=args.seed, log=lambda m: print(m, flush=True))
    header = None
    for name, arch in architectures(12, 0).items():
        if not arch.binarize.heads or args.only and not name.startswith(tuple(args.only)):
            continue
        result, model = fit(arch, train, val, fidelity, teacher=teacher, seed=args.seed)
        row = {"arch": name, "weight_scale": arch.binarizer.weight_scale, "delta_m": result.delta_m,
               **describe(model, val.images, val.targets["depth"])}
        if header is None:
            header = list(row)
            print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
        print("| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in row.values()) + " |", flush=True)


if __name__ == "__main__":
    main()
