"""Alias of :mod:`onebit.train.trainer` (the training loop)."""

from onebit.train.trainer import *  # noqa: F401,F403
from onebit.train.trainer import RunResult, Trainer, run  # noqa: F401
