"""Errors raised by the data loaders."""

from __future__ import annotations

import os


class DataError(ValueError):
    """A data file is missing, corrupt or malformed.

    The message always names the file and the problem: ``DataError(path, problem)`` renders as
    ``"<path>: <problem>"``; ``.path`` and ``.problem`` keep the two parts.
    """

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = os.fspath(path)
        self.problem = str(problem)
        super().__init__(f"{self.path}: {self.problem}")

    def __reduce__(self):
        # picklable across DataLoader worker processes
        return (type(self), (self.path, self.problem))
