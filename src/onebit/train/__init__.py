"""Training: one trainer (plain PyTorch + torch.distributed DDP) for point clouds and sketches.

``run(config, out_dir, resume=False, progress=True) -> RunResult``; configs in the schema of
docs/training.md (``onebit.train.config``); checkpoints in ``onebit.train.checkpoint``.
Importing this package is cheap; torch loads on first use of ``run``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["run", "RunResult", "load_model", "CheckpointError", "ConfigError"]


def run(config: dict, out_dir, resume: bool = False, progress: bool = True):
    """Train ``config`` into ``out_dir``; see ``onebit.train.trainer.run``."""
    from onebit.train.trainer import run as _run

    return _run(config, out_dir, resume=resume, progress=progress)


def __getattr__(name: str) -> Any:
    if name == "RunResult":
        from onebit.train.trainer import RunResult

        return RunResult
    if name in ("load_model", "CheckpointError"):
        from onebit.train import checkpoint

        return getattr(checkpoint, name)
    if name == "ConfigError":
        from onebit.train.config import ConfigError

        return ConfigError
    raise AttributeError(f"module 'onebit.train' has no attribute {name!r}")
