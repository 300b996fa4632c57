"""ResNet-18 (He et al., CVPR 2016) for sketches, as in DAB-Net (WACV 2018), without torchvision.

BasicBlocks [2, 2, 2, 2], widths 64/128/256/512 (x ``width``), conv1 7x7/2 -> maxpool 3/2 for
``in_channels`` (1) input, global average pool, linear classifier. Any input size >= 32 works
(the global pool replaces the official AvgPool(7) at 224).

``preact=True`` is the FBin block of the official code (notes §a6), XNOR-Net's order: every
binarized conv is preceded by BN, so the input binarizer takes sign(BN(x)):
BN -> conv3x3 -> ReLU -> BN -> conv3x3 (+ shortcut) -> ReLU, shortcut BN -> conv1x1; and the
classifier gets BN(avg-pooled features) (real features after ReLU are all >= 0, whose sign
would be constant). ``preact=False`` (FPrec / WBin): the standard conv -> BN -> ReLU blocks.

Float layers: only conv1 (DAB-Net §5.1 "all layers except the first"; the official code also
binarizes the classifier, a 1x1 conv there). ``float_classifier=True`` keeps the classifier float.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from onebit.models.registry import register_model
from onebit.models.sketch_a_net import init_weights

__all__ = ["BasicBlock", "ResNet", "resnet18"]


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convs and a shortcut); ``preact`` gives DAB-Net's FBin order."""
    expansion = 1

    def __init__(self, cin: int, cout: int, stride: int = 1, preact: bool = False):
        super().__init__()
        self.preact = preact
        if preact:
            self.bn1 = nn.BatchNorm2d(cin)
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        else:
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            if preact:
                self.downsample = nn.Sequential(nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 1, stride, bias=False))
            else:
                self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, cin, H, W) -> (B, cout, H / stride, W / stride)."""
        identity = x if self.downsample is None else self.downsample(x)
        if self.preact:
            out = self.relu(self.conv1(self.bn1(x)))
            out = self.conv2(self.bn2(out))
        else:
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ResNet with BasicBlocks for (B, in_channels, H, W) sketches (``resnet18``: ``layers=(2, 2, 2, 2)``)."""
    def __init__(self, layers=(2, 2, 2, 2), num_classes: int = 250, in_channels: int = 1, preact: bool = False,
                 width: float = 1.0, float_classifier: bool = False):
        super().__init__()
        widths = [max(4, round(c * width)) for c in (64, 128, 256, 512)]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = widths[0]
        stages = []
        for i, (w, n) in enumerate(zip(widths, layers)):
            blocks = []
            for j in range(n):
                blocks.append(BasicBlock(cin, w, stride=2 if (i > 0 and j == 0) else 1, preact=preact))
                cin = w
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.head_bn = nn.BatchNorm1d(cin) if preact else nn.Identity()
        self.fc = nn.Linear(cin, num_classes)
        self.onebit_keep_float = ("conv1", "fc") if float_classifier else ("conv1",)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, in_channels, H, W) -> logits (B, classes)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.avgpool(x).flatten(1)
        return self.fc(self.head_bn(x))


@register_model("resnet18", domain="sketch", tasks=("cls",))
def resnet18(num_classes: int, task: str = "cls", in_channels: int = 1, preact: bool = False, width: float = 1.0,
             float_classifier: bool = False) -> nn.Module:
    """ResNet-18 for (B, in_channels, H, W) sketches; ``preact`` = DAB-Net's FBin block order."""
    return ResNet((2, 2, 2, 2), num_classes, in_channels=in_channels, preact=preact, width=width,
                  float_classifier=float_classifier)
