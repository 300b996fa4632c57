"""onebit.quantizers: binarizers of DAB-Net, BiPointNet and the baselines they compare to.

``get(name, **options)`` builds one, ``names()`` lists them, ``sign`` is the project-wide sign
(sign(0) = +1), ``update_schedules(model, progress)`` drives IR-Net's EDE schedule.
See docs/quantizers.md for formulas and papers.
"""
from . import abc, dab, irnet, sign_ste, xnor  # noqa: F401  (importing registers every binarizer)
from .base import Quantizer, get, names, register_quantizer, sign, update_schedules
from .dab import center_and_clamp_, dab_stats
from .xnor import xnor_input_scale

__all__ = ["Quantizer", "get", "names", "register_quantizer", "sign", "update_schedules",
           "center_and_clamp_", "dab_stats", "xnor_input_scale"]
