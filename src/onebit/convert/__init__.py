"""onebit.convert: binarization specs, the papers' presets and ``binarize(model, spec)``.

See docs/layers.md ("Conversion") for the fields of ``BinarizeSpec`` and the preset table.
"""

from .binarize import (
    binarize,
    convertible_layers,
    float_layer_names,
    freeze_lsr_before_bn,
    iter_binary_layers,
)
from .presets import PRESETS, preset_description, presets, resolve_spec
from .spec import LAYER_KEYS, BinarizeSpec, SpecError

__all__ = [
    "LAYER_KEYS",
    "PRESETS",
    "BinarizeSpec",
    "SpecError",
    "binarize",
    "convertible_layers",
    "float_layer_names",
    "freeze_lsr_before_bn",
    "iter_binary_layers",
    "preset_description",
    "presets",
    "resolve_spec",
]
