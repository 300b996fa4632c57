"""Checkpoints: atomic save, validated load, ``load_model(path) -> (model, ckpt)``.

Format (docs/design.md): a ``torch.save`` dict with ``model_config``, ``state_dict``,
``optimizer``, ``scheduler``, ``epoch``, ``rng``, ``config``, ``metrics``, ``code_version``
(+ ``seed``, ``best``, ``format``). Saving writes a temporary file in the target directory,
fsyncs it and ``os.replace``s it over the target, so a process killed at any moment leaves the
previous checkpoint intact.
"""

from __future__ import annotations

import os
import random
import subprocess
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["CheckpointError", "REQUIRED_KEYS", "save_checkpoint", "load_checkpoint", "load_model",
           "code_version", "rng_state", "set_rng_state"]

FORMAT_VERSION = 1
"""Version of the checkpoint dict layout."""
REQUIRED_KEYS = ("model_config", "state_dict", "epoch", "config")
"""Keys every checkpoint must hold; a file without one is a ``CheckpointError``."""


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated, corrupted or not an onebit checkpoint."""


def code_version() -> str:
    """``git describe --always --dirty`` of the source tree if available, else the package version."""
    from onebit import __version__

    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"], cwd=here, capture_output=True, text=True,
            timeout=5,
        )
        if out.returncode == 0 and out.stdout.strip():
            return f"{__version__}+g{out.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        pass
    return __version__


def rng_state() -> dict[str, Any]:
    """The python, numpy and torch (and CUDA, if initialised) RNG states, for exact resume."""
    import numpy as np
    import torch

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the RNG states saved by ``rng_state``."""
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(obj: dict[str, Any], path: str | Path) -> Path:
    """Atomically ``torch.save(obj, path)``: temp file in the same dir, fsync, ``os.replace``."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    # make the rename itself durable
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return path


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> dict[str, Any]:
    """Load and validate a checkpoint; raise ``CheckpointError`` naming the file on any problem."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: checkpoint is empty (0 bytes)")
    try:
        # rng states hold numpy arrays / python tuples: the file is our own, so full unpickling
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # torch raises RuntimeError, EOFError, UnpicklingError, zipfile errors...
        raise CheckpointError(f"{path}: cannot read checkpoint (truncated or corrupted?): "
                              f"{type(e).__name__}: {e}") from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: not an onebit checkpoint (top level is {type(ckpt).__name__}, not dict)")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: not an onebit checkpoint, missing key(s) {missing}")
    if not isinstance(ckpt["state_dict"], dict) or not all(
        isinstance(v, torch.Tensor) for v in ckpt["state_dict"].values()
    ):
        raise CheckpointError(f"{path}: 'state_dict' is not a mapping of tensors")
    mc = ckpt["model_config"]
    if not isinstance(mc, dict) or "name" not in mc or "num_classes" not in mc:
        raise CheckpointError(f"{path}: 'model_config' lacks 'name' / 'num_classes'")
    return ckpt


def load_model(path: str | Path, map_location: str = "cpu"):
    """Rebuild the model stored in ``path`` (eval mode) -> ``(model, ckpt)``."""
    from onebit.models import from_config

    ckpt = load_checkpoint(path, map_location=map_location)
    try:
        model = from_config(ckpt["model_config"])
    except Exception as e:
        raise CheckpointError(f"{path}: cannot rebuild model {ckpt['model_config'].get('name')!r}: {e}") from e
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise CheckpointError(f"{path}: state_dict does not match the model: {e}") from None
    model.eval()
    return model, ckpt
