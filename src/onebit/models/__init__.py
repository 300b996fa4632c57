"""Model zoo: ``onebit.models.create(name, num_classes=..., binarize=...)``.

Every module in this package registers its models on import; they are all imported here so that
``names()`` lists everything.
"""

from __future__ import annotations

import importlib
import pkgutil

from onebit.models.registry import create, entry, from_config, names, register_model

__all__ = ["create", "entry", "from_config", "names", "register_model"]

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name not in {"registry"} and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")
