"""Sketch-A-Net (Yu et al., BMVC 2015 / IJCV 2017) as used by DAB-Net (WACV 2018).

Architecture (DAB-Net official code, notes §a8), input 1x225x225:
conv1 64 15x15/3 -> maxpool 3/2 -> conv2 128 5x5 -> maxpool 3/2 -> conv3-5 256 3x3 pad 1 ->
maxpool 3/2 -> conv6 512 7x7 (the "fc6") -> conv7 512 1x1 -> conv8 classes 1x1.

Block order: WBin/FPrec ``conv -> BN -> ReLU``; ``preact=True`` (FBin, XNOR-Net order, notes §a6)
``BN -> conv -> ReLU`` for every binarized conv, so that the sign the binarizer puts on the conv's
input sees batch-normalised activations. conv1 (float) is always conv -> BN -> ReLU; conv8
(float, DAB-Net "all layers except first and last") sees real activations.

Small inputs (``input_size`` < 225, e.g. 28x28 QuickDraw or 64x64): with r = input_size / 225,
conv1 gets kernel max(3, round(15 r)) and stride max(1, round(3 r)), which keeps the receptive
field of conv1 the same fraction of the image, and conv6 becomes a "fully connected" conv whose
kernel covers whatever map is left after pool3 (7x7 at 225). ``width`` multiplies every
channel count (conv8 excluded).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from onebit.models.registry import register_model

__all__ = ["ConvUnit", "SketchANet", "init_weights", "sketch_a_net", "sketch_a_net_geometry"]


class ConvUnit(nn.Module):
    """One conv with its BN and ReLU in the chosen order.

    ``preact=False``: conv -> BN -> ReLU (FPrec / WBin). ``preact=True``: BN -> conv -> ReLU
    (FBin: the layer's input binarizer takes sign(BN(x))). The conv has no bias: a BN always
    sits next to it.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0,
                 preact: bool = False, relu: bool = True):
        super().__init__()
        self.preact = preact
        if preact:
            self.bn = nn.BatchNorm2d(cin)
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        if not preact:
            self.bn = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True) if relu else nn.Identity()

    def forward(self, x):
        """conv -> BN -> ReLU, or BN -> conv -> ReLU with ``preact`` (FBin)."""
        if self.preact:
            return self.relu(self.conv(self.bn(x)))
        return self.relu(self.bn(self.conv(x)))


def init_weights(model: nn.Module) -> None:
    """Kaiming-normal (fan_out, ReLU) convs, BN weight 1 / bias 0 (the official DAB code's init)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _pool_out(n: int) -> int:
    return (n - 3) // 2 + 1


def sketch_a_net_geometry(input_size: int) -> dict:
    """conv1 kernel / stride and conv6 kernel for an ``input_size`` x ``input_size`` input."""
    if input_size >= 225:
        k1, s1 = 15, 3
    else:
        r = input_size / 225
        k1, s1 = max(3, round(15 * r)), max(1, round(3 * r))
    n = (input_size - k1) // s1 + 1
    n = _pool_out(n)
    n = n - 4  # conv2 5x5, no pad
    n = _pool_out(n)
    n = _pool_out(n)  # conv3-5 keep the size
    if n < 1:
        raise ValueError(f"sketch_a_net: input_size {input_size} is too small (the map vanishes before conv6)")
    k6 = 7 if input_size >= 225 else n
    return {"conv1_kernel": k1, "conv1_stride": s1, "conv6_kernel": k6, "pool3_size": n}


class SketchANet(nn.Module):
    """Sketch-A-Net for (B, in_channels, input_size, input_size) sketches; see the module docstring."""
    def __init__(self, num_classes: int, in_channels: int = 1, preact: bool = False, width: float = 1.0,
                 input_size: int = 225, dropout: float | None = None):
        super().__init__()
        g = sketch_a_net_geometry(input_size)
        self.geometry = g
        c = [max(4, round(ch * width)) for ch in (64, 128, 256, 256, 256, 512, 512)]
        if dropout is None:
            dropout = 0.2 if preact else 0.1  # the official FBin / WBin models (notes §a6, §a8)
        self.conv1 = ConvUnit(in_channels, c[0], g["conv1_kernel"], stride=g["conv1_stride"])
        self.pool1 = nn.MaxPool2d(3, 2)
        self.conv2 = ConvUnit(c[0], c[1], 5, preact=preact)
        self.pool2 = nn.MaxPool2d(3, 2)
        self.conv3 = ConvUnit(c[1], c[2], 3, padding=1, preact=preact)
        self.conv4 = ConvUnit(c[2], c[3], 3, padding=1, preact=preact)
        self.conv5 = ConvUnit(c[3], c[4], 3, padding=1, preact=preact)
        self.pool3 = nn.MaxPool2d(3, 2)
        self.conv6 = ConvUnit(c[4], c[5], g["conv6_kernel"], preact=preact)
        self.drop6 = nn.Dropout(dropout)
        self.conv7 = ConvUnit(c[5], c[6], 1, preact=preact)
        self.drop7 = nn.Dropout(dropout)
        self.conv8 = nn.Conv2d(c[6], num_classes, 1)
        # first and last layers stay float (DAB-Net §5.1: "all layers except first and last")
        self.onebit_keep_float = ("conv1.conv", "conv8")
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> logits (B, classes); larger inputs average the class maps."""
        x = self.pool1(self.conv1(x))
        x = self.pool2(self.conv2(x))
        x = self.pool3(self.conv5(self.conv4(self.conv3(x))))
        x = self.drop6(self.conv6(x))
        x = self.drop7(self.conv7(x))
        x = self.conv8(x)
        if x.shape[-2:] != (1, 1):
            # inputs larger than input_size: average the class maps (a fully-convolutional net)
            x = x.mean(dim=(-2, -1), keepdim=True)
        return x.flatten(1)


@register_model("sketch_a_net", domain="sketch", tasks=("cls",))
def sketch_a_net(num_classes: int, task: str = "cls", in_channels: int = 1, preact: bool = False,
                 width: float = 1.0, input_size: int = 225, dropout: float | None = None) -> nn.Module:
    """Sketch-A-Net (15x15/3 conv1), DAB-Net's sketch baseline; returns logits (B, classes)."""
    return SketchANet(num_classes, in_channels=in_channels, preact=preact, width=width,
                      input_size=input_size, dropout=dropout)
