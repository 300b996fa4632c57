"""Load a ``.onebit`` file and run it (no torch): :func:`load` → :class:`Model`, ``Model.run(x)``.

libonebit validates the file (docs/format.md), builds an execution plan for each point count it sees
and runs the whole graph in one native call per batch; this module converts arrays.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from . import _engine

ISAS = ("avx512", "avx2", "neon", "scalar")
"""Kernel paths of the native engine (x86: avx512, avx2; aarch64: neon; anywhere: scalar)."""


def resolve_isa(isa: str | None) -> str:
    """ISA to use: ``isa``, else $ONEBIT_ISA, else the best this CPU supports (ValueError if unknown or
    not supported here)."""
    return _engine.resolve_isa(isa or "")


class Model:
    """An exported model ready to run: ``run(points) -> logits`` (NumPy in, NumPy out).

    Attributes: ``path``, ``isa``, ``file_bytes``, ``graph`` (the file's graph), ``ops`` (its ops),
    ``values``, ``points`` (the point count a fixed-points export takes, else None), ``input_channels``,
    ``input_hw`` ([H, W] for image models, else None), ``output_channels``, ``output_pooled``.
    """

    def __init__(self, path, isa: str | None = None):
        self.path = Path(path)
        self._m = _engine.Model(str(self.path), isa or "")
        self.isa: str = self._m.isa
        self.file_bytes: int = self._m.file_bytes
        self.graph: dict = json.loads(self._m.graph_json)
        self.values: dict = self.graph["values"]
        # as validated: a concat's "input" stands for its first input
        self.ops: list[dict] = [dict(op, input=op["inputs"][0]) if op.get("op") == "concat" else op
                                for op in self.graph["ops"]]
        self.points: int | None = self._m.points
        self.input_channels: int = self._m.input_channels
        self.output_channels: int = self._m.output_channels
        self.output_pooled: bool = self._m.output_pooled
        hw = self._m.input_hw
        self.input_hw: list[int] | None = list(hw) if hw is not None else None

    @property
    def tensors(self) -> dict[str, np.ndarray]:
        """The file's tensors (read again from the file)."""
        from .format import read

        return read(self.path)[0]

    def _array(self, x) -> np.ndarray:
        x = np.asarray(x)
        if not np.issubdtype(x.dtype, np.floating):
            what = "images" if self.input_hw is not None else "points"
            raise ValueError(f"{self.path.name}: expected float {what}, got {x.dtype}")
        return np.ascontiguousarray(x, dtype=np.float32)

    def run(self, x, threads: int = 1) -> np.ndarray:
        """Logits (B, classes) for points (B, N, C) float32 (or one cloud (N, C) → (1, classes)); image
        models (``input_hw`` set) take images (B, C, H, W), or (B, H, W) / (H, W) with one channel."""
        return self._m.run(self._array(x), int(threads))

    def run_debug(self, x):
        """(logits, [per cloud: {op name: {"float"|"bits"|"index": output, "acc": int32 accumulators}}]).

        ``acc`` is the binary layer's integer product: the XNOR dot (k − 2·popcount) for XNOR layers,
        and for AND (DAB) layers [popcount(e AND x) ‖ popcount(x)] per row.
        """
        return self._m.run_debug(self._array(x))

    def profile(self, x, threads: int = 1, repeats: int = 20) -> list[tuple[str, float]]:
        """Per-op time in µs per cloud (native thread CPU timers), summed over ``repeats`` runs of ``x``."""
        x = self._array(x)
        clouds = self._m.output_shape(list(x.shape))[0]
        total: dict[str, float] = {}
        for _ in range(repeats):
            for name, ns in self._m.profile(x, int(threads)):
                total[name] = total.get(name, 0.0) + ns
        scale = 1e-3 / (repeats * max(1, clouds))
        return [(name, ns * scale) for name, ns in total.items()]

    def __repr__(self) -> str:
        return (f"onebit_runtime.Model({str(self.path)!r}, ops={len(self.ops)}, isa={self.isa!r}, "
                f"in={self.input_channels}, out={self.output_channels})")


def load(path, isa: str | None = None) -> Model:
    """Load and validate a ``.onebit`` file (:class:`FormatError` naming the file if it is not valid);
    ``isa`` (or $ONEBIT_ISA) forces avx512 / avx2 / neon / scalar."""
    return Model(os.fspath(path), isa=isa)


def profile(model, x, threads: int = 1, repeats: int = 20) -> list[tuple[str, float]]:
    """Per-op native time in µs per cloud of ``model`` (a :class:`Model` or a path) on ``x``."""
    m = model if isinstance(model, Model) else load(model)
    return m.profile(x, threads=threads, repeats=repeats)
