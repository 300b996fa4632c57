"""Deterministic stratified k-fold splits for the sketch sets.

DAB-Net (§5.1) evaluates TU-Berlin with three-fold cross validation, 2:1 train/test; the
official code ships no split files (notes §a7). onebit's rule, which anyone can recompute:

* the files of each class are sorted (numerically by file stem when the stems are numbers,
  as TU-Berlin's ``1.png ... 20000.png``, else by name);
* class ``c`` (index in the sorted class list) gets the permutation
  ``numpy.random.default_rng([seed, c]).permutation(n_c)``; the file at sorted rank
  ``perm[j]`` goes to part ``j mod k``. Every part of a class therefore holds n_c/k files
  (+-1): stratified, disjoint, covering everything;
* fold ``f`` (1-based) tests on part ``f - 1`` and trains on the other ``k - 1`` parts
  (k = 3: a 2:1 train/test split).

The published files in ``folds/`` are this rule with seed 0: ``tuberlin_3fold_seed0.json``
(250 classes x 80 sketches, stored by class index and rank so that it needs no copy of the data)
and ``sketchy_subset25_5fold_seed0.json`` (the shared Sketchy subset). ``python -m
onebit.data.sketches.folds`` rewrites them; ``write_folds_for_files`` writes a fold file with
explicit file names for any folder.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from onebit.data.errors import DataError

__all__ = [
    "FOLDS_DIR",
    "fold_parts",
    "fold_indices",
    "load_rank_folds",
    "sort_files",
    "write_folds_for_files",
    "write_published_folds",
]

FOLDS_DIR = Path(__file__).with_name("folds")
"""Folder of the published fold files shipped with the package."""
DEFAULT_SEED = 0
"""Seed of the published folds."""


def sort_files(names: Sequence[str]) -> list[str]:
    """Numeric order when every stem is an integer (TU-Berlin), else lexicographic."""
    stems = [Path(n).stem for n in names]
    if stems and all(s.isdigit() for s in stems):
        return [n for _, n in sorted(zip((int(s) for s in stems), names))]
    return sorted(names)


def fold_parts(n: int, k: int, seed: int, class_index: int) -> np.ndarray:
    """Part id (0..k-1) of each of the ``n`` sorted files of class ``class_index``."""
    if k < 2:
        raise ValueError(f"k-fold needs k >= 2, got {k}")
    perm = np.random.default_rng([seed, class_index]).permutation(n)
    parts = np.empty(n, dtype=np.int64)
    parts[perm] = np.arange(n) % k
    return parts


def fold_indices(labels: Sequence[int], k: int, fold: int, seed: int = DEFAULT_SEED):
    """(train, test) index arrays of fold ``fold`` (1..k) for items in their sorted order
    within each class (``labels[i]`` is item i's class; items of a class keep their order)."""
    if not 1 <= fold <= k:
        raise ValueError(f"fold must be in 1..{k}, got {fold}")
    labels = np.asarray(labels)
    part = np.empty(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        part[idx] = fold_parts(len(idx), k, seed, int(c))
    test = np.flatnonzero(part == fold - 1)
    train = np.flatnonzero(part != fold - 1)
    return train, test


def load_rank_folds(path: str | os.PathLike) -> dict:
    """Read a published rank-based fold file and check it against its own rule."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(path, f"cannot read fold file ({e})") from None
    for key in ("k", "seed", "parts"):
        if key not in data:
            raise DataError(path, f"fold file has no {key!r} entry")
    return data


def _rank_fold_doc(name: str, counts: Sequence[int], k: int, seed: int) -> dict:
    return {
        "dataset": name,
        "k": k,
        "seed": seed,
        "rule": (
            "files of each class sorted (numeric stems numerically); class c (index in sorted class "
            "list) uses numpy.random.default_rng([seed, c]).permutation(n); the file at rank perm[j] "
            "is in part j mod k; fold f tests on part f-1 and trains on the rest"
        ),
        "parts": [fold_parts(n, k, seed, c).tolist() for c, n in enumerate(counts)],
    }


def write_published_folds(out_dir: str | os.PathLike = FOLDS_DIR, seed: int = DEFAULT_SEED) -> list[Path]:
    """(Re)write the fold files onebit publishes (see the module docstring)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, counts, k in (("tuberlin", [80] * 250, 3), ("sketchy_subset25", [25] * 125, 5)):
        path = out_dir / f"{name}_{k}fold_seed{seed}.json"
        path.write_text(json.dumps(_rank_fold_doc(name, counts, k, seed), separators=(",", ":")) + "\n")
        written.append(path)
    return written


def write_folds_for_files(files_by_class: dict[str, Sequence[str]], path: str | os.PathLike, k: int = 3,
                          seed: int = DEFAULT_SEED) -> Path:
    """Write explicit fold lists ``{"fold1": {"train": [...], "test": [...]}, ...}`` (paths as given,
    e.g. ``airplane/1.png``) for a dataset on disk, by the same rule."""
    folds = {f"fold{f}": {"train": [], "test": []} for f in range(1, k + 1)}
    for c, cls in enumerate(sorted(files_by_class)):
        files = sort_files(list(files_by_class[cls]))
        parts = fold_parts(len(files), k, seed, c)
        for fname, p in zip(files, parts):
            for f in range(1, k + 1):
                folds[f"fold{f}"]["test" if p == f - 1 else "train"].append(fname)
    path = Path(path)
    path.write_text(json.dumps({"k": k, "seed": seed, **folds}, indent=1) + "\n")
    return path


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m onebit.data.sketches.folds [--out DIR] [--seed S]``: rewrite the published fold files."""
    ap = argparse.ArgumentParser(description="Rewrite onebit's published sketch fold files.")
    ap.add_argument("--out", default=str(FOLDS_DIR))
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = ap.parse_args(argv)
    for p in write_published_folds(args.out, args.seed):
        print(p)


if __name__ == "__main__":
    main()
