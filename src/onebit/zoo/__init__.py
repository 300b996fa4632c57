"""onebit.zoo: pretrained models that ship inside the package (like Larq Zoo or timm's pretrained tags).

    import onebit.zoo
    onebit.zoo.names()                       # ['pointnet-bipointnet-modelnet40', ...]
    onebit.zoo.info(name)                    # model, binarize, num_classes, points, oa, protocol, sha256, ...
    onebit.zoo.engine(name).run(points)      # the shipped .onebit file in onebit.runtime (no torch)
    onebit.zoo.load(name)                    # the torch model, eval mode, with its weights

Every entry is three files in ``onebit/zoo/entries/``: ``NAME.json`` (the metadata: how it was
trained, what it measured), ``NAME.safetensors`` (the weights; no pickle) and, where the model
exports, ``NAME.onebit`` (the packed-bit engine file). Both weight files are checked against the
sha256 in the metadata before use; a mismatch raises :class:`ZooError` naming the file.

Binary layers may be stored as their signs (1 bit per weight) and one magnitude per output channel
instead of the FP32 latent weights: exact for inference (the layer computes the same binarized
weight), not for further training; ``info(name)["weights"]["storage"]`` says which.

Entries are built from trainer checkpoints by ``benchmarks/build_zoo.py`` (:mod:`onebit.zoo.build`),
which measures ``oa`` on the real test split; ``docs/zoo.md`` lists the commands.

This module imports neither torch nor the training code: ``names``, ``info`` and ``engine`` work
where only NumPy and the engine are installed; ``load`` imports torch when called.
"""

from __future__ import annotations

import copy
import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = ["ZooError", "ENTRIES_DIR", "BUDGET_BYTES", "names", "info", "load", "engine", "path", "verify",
           "total_bytes"]

ENTRIES_DIR = Path(__file__).resolve().parent / "entries"
"""The folder of the shipped entries (package data): ``NAME.json``, ``NAME.safetensors``, ``NAME.onebit``."""
BUDGET_BYTES = 20 * 2**20
"""Size limit of every shipped file of every entry together (the package stays small)."""


class ZooError(ValueError):
    """An unknown entry, a missing file, or a file whose sha256 does not match the metadata."""


def _dir(root: str | Path | None) -> Path:
    return ENTRIES_DIR if root is None else Path(root)


def names(root: str | Path | None = None) -> list[str]:
    """Names of the entries (sorted)."""
    d = _dir(root)
    return sorted(p.stem for p in d.glob("*.json")) if d.is_dir() else []


@lru_cache(maxsize=64)
def _read_meta(json_path: str, mtime_ns: int) -> dict[str, Any]:
    try:
        return json.loads(Path(json_path).read_text())
    except (OSError, ValueError) as e:
        raise ZooError(f"{json_path}: cannot read the zoo metadata: {e}") from None


def _meta(name: str, root: str | Path | None = None) -> dict[str, Any]:
    p = _dir(root) / f"{name}.json"
    if not isinstance(name, str) or "/" in name or not p.is_file():
        known = ", ".join(names(root)) or "none"
        raise ZooError(f"unknown zoo entry {name!r}; known entries: {known}")
    return _read_meta(str(p), p.stat().st_mtime_ns)


def info(name: str, root: str | Path | None = None) -> dict[str, Any]:
    """The entry's metadata (a copy): ``model``, ``binarize``, ``num_classes``, ``points``, ``oa`` (test
    OA in %, measured with ``oa_measured_with``: the engine where the entry exports, else PyTorch),
    ``protocol``, ``sha256`` and ``bytes`` (of the weights file), ``epochs``, ``schedule``, ``command``
    (how it was trained), ``weights`` / ``engine`` (file, sha256, bytes, storage), ``build_command``."""
    return copy.deepcopy(_meta(name, root))


def path(name: str, kind: str = "weights", root: str | Path | None = None) -> Path:
    """Path of the entry's ``weights`` (.safetensors) or ``engine`` (.onebit) file, verified by sha256."""
    meta = _meta(name, root)
    if kind not in ("weights", "engine"):
        raise ValueError(f"kind must be 'weights' or 'engine', got {kind!r}")
    f = meta.get(kind)
    if not f:
        raise ZooError(f"zoo entry {name!r} ships no {kind} file"
                       + (" (it does not export to the engine: use onebit.zoo.load)" if kind == "engine" else ""))
    p = _dir(root) / f["file"]
    _check_file(p, f["sha256"])
    return p


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_file(p: Path, want: str) -> bytes:
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ZooError(f"{p}: cannot read the zoo file: {e}") from None
    got = _sha256(data)
    if got != want:
        raise ZooError(f"{p}: sha256 mismatch (file {got}, metadata {want}): the file is corrupted or was "
                       "replaced; reinstall onebit or rebuild the entry with benchmarks/build_zoo.py")
    return data


def verify(name: str, root: str | Path | None = None) -> dict[str, str]:
    """Check every file of the entry against its sha256; ``{kind: path}`` of the files checked."""
    meta = _meta(name, root)
    return {k: str(path(name, k, root)) for k in ("weights", "engine") if meta.get(k)}


def engine(name: str, isa: str | None = None, root: str | Path | None = None):
    """The entry's ``.onebit`` file loaded in :mod:`onebit.runtime` (NumPy in, logits out; no torch)."""
    from onebit.runtime import load as runtime_load

    return runtime_load(path(name, "engine", root), isa=isa)


def load(name: str, root: str | Path | None = None):
    """The entry's torch model (``onebit.models``), eval mode, with the shipped weights."""
    from onebit.zoo.weights import load_weights

    meta = _meta(name, root)
    f = meta["weights"]
    data = _check_file(_dir(root) / f["file"], f["sha256"])
    return load_weights(meta["model_config"], data, source=str(_dir(root) / f["file"]))


def total_bytes(root: str | Path | None = None, exclude: str | None = None) -> int:
    """Bytes of every shipped file of every entry (metadata included), optionally without one entry."""
    d = _dir(root)
    if not d.is_dir():
        return 0
    return sum(p.stat().st_size for p in d.iterdir()
               if p.is_file() and p.suffix in (".json", ".safetensors", ".onebit") and p.stem != exclude)
