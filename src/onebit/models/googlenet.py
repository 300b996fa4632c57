"""GoogLeNet / Inception v1 (Szegedy et al., CVPR 2015) for sketches, as in DAB-Net (WACV 2018).

Standard widths: stem conv1 7x7/2 (64) -> maxpool -> conv2 1x1 (64) -> conv3 3x3 (192) -> maxpool
-> 3a, 3b -> maxpool -> 4a..4e -> maxpool -> 5a, 5b -> global avg pool -> dropout 0.4 -> linear.
Each Inception module has the four branches 1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 | maxpool 3x3 -> 1x1.
``width`` scales every channel count; any input >= 32 works (global average pool).

Options:
* ``preact=True``: DAB-Net's FBin order (notes §a6) BN -> conv -> ReLU for every conv after conv1
  (the input binarizer then takes sign(BN(x))), and BN before the (binarized) classifier.
* ``aux_logits=True``: the two auxiliary heads on 4a and 4d (avgpool to 4x4 -> 1x1 conv 128 ->
  fc 1024 -> dropout 0.7 -> fc classes). The forward still returns the main logits; in training
  mode the auxiliary logits are left in ``model.aux_outputs`` (a tuple) for a loss to add
  (the paper weights them 0.3); in eval mode they are not computed.
* ``official_a4=True``: the DAB-Net official code's non-standard 4a, whose 3x3 branch has 204
  channels instead of 208 (so 4b takes 508 inputs; notes §a8).
* ``float_classifier=True``: keep the final Linear float, as the official code does (its trainer
  binarizes convs only, notes §a5). Default: the paper, "all layers except the first" binarized.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from onebit.models.registry import register_model
from onebit.models.sketch_a_net import ConvUnit, init_weights

__all__ = ["GoogLeNet", "Inception", "googlenet"]

# (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj), Szegedy et al. Table 1
INCEPTION_CFG = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}
"""Inception module widths (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj), Szegedy et al. Table 1."""


class Inception(nn.Module):
    """One Inception module: the four branches 1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 | maxpool -> 1x1, concatenated."""
    def __init__(self, cin: int, c1: int, c3r: int, c3: int, c5r: int, c5: int, cp: int, preact: bool = False):
        super().__init__()
        self.b1 = ConvUnit(cin, c1, 1, preact=preact)
        self.b2 = nn.Sequential(ConvUnit(cin, c3r, 1, preact=preact), ConvUnit(c3r, c3, 3, padding=1, preact=preact))
        self.b3 = nn.Sequential(ConvUnit(cin, c5r, 1, preact=preact), ConvUnit(c5r, c5, 5, padding=2, preact=preact))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), ConvUnit(cin, cp, 1, preact=preact))
        self.out_channels = c1 + c3 + c5 + cp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, cin, H, W) -> (B, out_channels, H, W)."""
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)


class AuxHead(nn.Module):
    """Auxiliary classifier on 4a / 4d: avgpool 4x4 -> 1x1 conv -> fc -> dropout 0.7 -> fc."""
    def __init__(self, cin: int, num_classes: int, width: float, preact: bool):
        super().__init__()
        c, h = max(4, round(128 * width)), max(4, round(1024 * width))
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.conv = ConvUnit(cin, c, 1, preact=preact)
        self.bn1 = nn.BatchNorm1d(c * 16) if preact else nn.Identity()
        self.fc1 = nn.Linear(c * 16, h)
        self.relu = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(0.7)
        self.bn2 = nn.BatchNorm1d(h) if preact else nn.Identity()
        self.fc2 = nn.Linear(h, num_classes)

    def forward(self, x):
        """(B, cin, H, W) -> auxiliary logits (B, classes)."""
        x = self.conv(self.pool(x)).flatten(1)
        x = self.drop(self.relu(self.fc1(self.bn1(x))))
        return self.fc2(self.bn2(x))


class GoogLeNet(nn.Module):
    """GoogLeNet / Inception v1 for (B, in_channels, H, W) sketches; options in the module docstring."""
    def __init__(self, num_classes: int, in_channels: int = 1, preact: bool = False, width: float = 1.0,
                 aux_logits: bool = False, official_a4: bool = False, float_classifier: bool = False,
                 dropout: float = 0.4):
        super().__init__()

        def w(c: int) -> int:
            return max(4, round(c * width))

        self.conv1 = ConvUnit(in_channels, w(64), 7, stride=2, padding=3)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = ConvUnit(w(64), w(64), 1, preact=preact)
        self.conv3 = ConvUnit(w(64), w(192), 3, padding=1, preact=preact)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        cin = w(192)
        for name, cfg in INCEPTION_CFG.items():
            cfg = list(cfg)
            if name == "4a" and official_a4:
                cfg[2] = 204
            block = Inception(cin, *(w(c) for c in cfg), preact=preact)
            setattr(self, f"inception{name}", block)
            cin = block.out_channels
            if name == "3b":
                self.pool3 = nn.MaxPool2d(3, 2, ceil_mode=True)
            if name == "4a":
                aux1_in = cin
            if name == "4d":
                aux2_in = cin
            if name == "4e":
                self.pool4 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.aux_logits = aux_logits
        self.aux1 = AuxHead(aux1_in, num_classes, width, preact) if aux_logits else None
        self.aux2 = AuxHead(aux2_in, num_classes, width, preact) if aux_logits else None
        self.aux_outputs: tuple[torch.Tensor, ...] = ()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.head_bn = nn.BatchNorm1d(cin) if preact else nn.Identity()
        self.fc = nn.Linear(cin, num_classes)
        self.onebit_keep_float = ("conv1.conv", "fc") if float_classifier else ("conv1.conv",)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, classes); in training with ``aux_logits`` the auxiliary logits go to ``aux_outputs``."""
        x = self.pool1(self.conv1(x))
        x = self.pool2(self.conv3(self.conv2(x)))
        x = self.pool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        aux = []
        if self.aux_logits and self.training:
            aux.append(self.aux1(x))
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        if self.aux_logits and self.training:
            aux.append(self.aux2(x))
        x = self.pool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        x = self.dropout(self.avgpool(x).flatten(1))
        self.aux_outputs = tuple(aux)
        return self.fc(self.head_bn(x))


@register_model("googlenet", domain="sketch", tasks=("cls",))
def googlenet(num_classes: int, task: str = "cls", in_channels: int = 1, preact: bool = False, width: float = 1.0,
              aux_logits: bool = False, official_a4: bool = False, float_classifier: bool = False) -> nn.Module:
    """GoogLeNet (Inception v1) for (B, in_channels, H, W) sketches; ``preact`` = DAB-Net's FBin order."""
    return GoogLeNet(num_classes, in_channels=in_channels, preact=preact, width=width, aux_logits=aux_logits,
                     official_a4=official_a4, float_classifier=float_classifier)
