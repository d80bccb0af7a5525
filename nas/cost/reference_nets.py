"""ImageNet reference networks that pin the cost convention to published figures.

``resnet18()`` has torchvision's ResNet-18 shape (≈1.81×10⁹ FLOPs at 224×224) and ``bireal18()`` is
Bi-Real Net-18 (Liu et al., 2018: ≈1.63×10⁸ OPs): FP 7×7 stem, FP 1×1 downsample convs after
average pooling, FP classifier, every 3×3 conv of the four stages binary with its own real-valued
shortcut. Neither is trained; they exist to be counted.
"""

from __future__ import annotations

from torch import Tensor, nn

from nas.model.binary import BinaryConv2d

__all__ = ["bireal18", "resnet18"]

_STAGES = ((64, 1), (128, 2), (256, 2), (512, 2))


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class _BiRealConv(nn.Module):
    """One binary 3×3 conv with BN and a real-valued shortcut around it (Bi-Real's unit)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv = BinaryConv2d(cin, cout, 3, stride, 1, estimator="approx", weight_scale="channel")
        self.bn = nn.BatchNorm2d(cout)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.AvgPool2d(2, 2), nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.conv(x)) + self.shortcut(x)


def _imagenet_net(stages: list[nn.Module]) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 64, 7, 2, 3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, 1),
        *stages,
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(512, 1000),
    )


def resnet18() -> nn.Sequential:
    """torchvision-shaped ResNet-18 (ImageNet, 1000 classes)."""
    blocks: list[nn.Module] = []
    cin = 64
    for cout, stride in _STAGES:
        blocks += [_BasicBlock(cin, cout, stride), _BasicBlock(cout, cout, 1)]
        cin = cout
    return _imagenet_net(blocks)


def bireal18() -> nn.Sequential:
    """Bi-Real Net-18 (ImageNet, 1000 classes): 16 binary 3×3 convs, each with a shortcut."""
    units: list[nn.Module] = []
    cin = 64
    for cout, stride in _STAGES:
        units += [_BiRealConv(cin, cout, stride)] + [_BiRealConv(cout, cout, 1) for _ in range(3)]
        cin = cout
    return _imagenet_net(units)
