"""Evaluation protocols for point-cloud classification: part of the config of every result.

A ``Protocol`` fixes what a reported number means: how many points, which frame, how points are
chosen, the train augmentation, whether the test set is fixed, and which epoch is reported.

- ``"common"`` (default): the usual ModelNet40 protocol of PointNet and its successors: the first
  1024 points of each stored cloud, a **fixed** test set, train augmentation = random rotation
  about the up axis + clipped jitter (σ 0.01, clip 0.05) + shuffling (PointNet's recipe);
  final and best epoch both reported.
- ``"bipointnet"``: BiPointNet's official code: 1024 points sampled afresh at every access for
  train **and test** (``test_resample=True``), no augmentation, best test epoch reported first.
  With stored clouds (HDF5 / repacked) "sampling afresh" draws a random subset of the stored
  points; only the OFF format re-samples the mesh surface as the official code does.

``build_datasets(protocol, dataset="modelnet40", **options) -> (train, test)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from onebit.data.points._io import SAMPLINGS, UP_AXES
from onebit.data.registry import get_dataset
from onebit.data.transforms import transform_from_config

REPORTS = ("final", "best")
"""What a protocol may report: the final epoch's accuracy and/or the best epoch's."""


@dataclass(frozen=True)
class Protocol:
    """Data protocol of a point-cloud experiment (YAML-friendly via ``to_dict`` / ``from_dict``).

    Fields: ``name``; ``num_points``; ``use_normals``; ``up_axis`` ("y" | "z"); ``sampling``
    ("first" | "random" | "fps": how train points are chosen from a stored cloud);
    ``train_augment`` (transform list for ``onebit.data.transforms.transform_from_config``);
    ``test_resample`` (False: fixed test set; True: test points re-drawn at every evaluation);
    ``test_sampling`` (how test points are chosen); ``report`` (epochs reported, the first is
    the headline: "final", "best").
    """

    name: str = "common"
    num_points: int = 1024
    use_normals: bool = False
    up_axis: str = "y"
    sampling: str = "first"
    train_augment: tuple = ("rotate", "jitter", "shuffle")
    test_resample: bool = False
    test_sampling: str = "first"
    report: tuple[str, ...] = REPORTS

    def __post_init__(self):
        if self.num_points <= 0:
            raise ValueError(f"protocol {self.name!r}: num_points must be positive, got {self.num_points}")
        if self.up_axis not in UP_AXES:
            raise ValueError(f"protocol {self.name!r}: up_axis must be one of {UP_AXES}, got {self.up_axis!r}")
        for k in ("sampling", "test_sampling"):
            if getattr(self, k) not in SAMPLINGS:
                raise ValueError(f"protocol {self.name!r}: {k} must be one of {SAMPLINGS}, got {getattr(self, k)!r}")
        if not self.report or any(r not in REPORTS for r in self.report):
            raise ValueError(f"protocol {self.name!r}: report must be a non-empty subset of {REPORTS}")
        object.__setattr__(self, "train_augment", tuple(self.train_augment or ()))
        object.__setattr__(self, "report", tuple(self.report))
        transform_from_config(list(self.train_augment))  # fail early on a bad augmentation list

    def to_dict(self) -> dict[str, Any]:
        """The protocol as a plain, YAML-friendly dict (``from_dict`` inverts it)."""
        d = asdict(self)
        d["train_augment"] = [dict(a) if isinstance(a, dict) else a for a in self.train_augment]
        d["report"] = list(self.report)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Protocol:
        """Build a protocol from its dict form; unknown fields raise ValueError."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown protocol fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)

    def train_transform(self):
        """The train augmentation as a ``Compose`` (rotations default to the protocol's up axis)."""
        spec = []
        for a in self.train_augment:
            if a == "rotate" or (isinstance(a, dict) and a.get("name") == "rotate" and "axis" not in a):
                a = {**(a if isinstance(a, dict) else {"name": "rotate"}), "axis": self.up_axis}
            spec.append(a)
        return transform_from_config(spec)


PROTOCOLS: dict[str, Protocol] = {
    "common": Protocol(),
    "bipointnet": Protocol(name="bipointnet", sampling="random", train_augment=(), test_resample=True,
                           test_sampling="random", report=("best", "final")),
}
"""Named protocols: ``common`` (the first 1024 points, a fixed test set, rotate + jitter + shuffle
augmentation) and ``bipointnet`` (the official BiPointNet code: random points re-drawn at every
access, no augmentation, best and final epoch reported).
"""


def protocol_names() -> list[str]:
    """Sorted names of the predefined protocols."""
    return sorted(PROTOCOLS)


def get_protocol(protocol: str | dict | Protocol | None = None, **overrides) -> Protocol:
    """A protocol from a name ("common", "bipointnet"), a dict or a ``Protocol``, with overrides."""
    if protocol is None:
        p = PROTOCOLS["common"]
    elif isinstance(protocol, Protocol):
        p = protocol
    elif isinstance(protocol, str):
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}; known: {', '.join(protocol_names())}")
        p = PROTOCOLS[protocol]
    elif isinstance(protocol, dict):
        unknown = set(protocol) - {f.name for f in fields(Protocol)}
        if unknown:
            raise ValueError(f"unknown protocol fields {sorted(unknown)}")
        # a dict naming a known protocol overrides it; any other name starts from "common"
        p = replace(PROTOCOLS.get(protocol.get("name", "common"), PROTOCOLS["common"]), **protocol)
    else:
        raise TypeError(f"protocol must be a name, dict or Protocol, got {type(protocol).__name__}")
    return replace(p, **overrides) if overrides else p


def build_datasets(protocol: str | dict | Protocol | None = None, dataset: str = "modelnet40",
                   transform_extra=None, **options):
    """Train and test datasets of a classification ``dataset`` under ``protocol``.

    ``options`` go to the dataset factory (e.g. ``root``, ``seed``, ``format``); the protocol
    sets ``num_points``, ``use_normals``, ``up_axis``, ``sampling`` and ``resample``.
    Synthetic sets (already fixed-size clouds) only take the train augmentation.
    Returns ``(train, test)``.
    """
    from onebit.data.registry import dataset_entry

    entry = dataset_entry(dataset)
    if entry.domain != "points" or entry.task == "semseg":
        raise ValueError(f"point protocols apply to point classification / part-segmentation datasets, "
                         f"not {dataset!r} ({entry.domain}, {entry.task})")
    p = get_protocol(protocol)
    train_tf = p.train_transform()
    if transform_extra is not None:
        from onebit.data.transforms import Compose

        train_tf = Compose([t for t in (train_tf, transform_extra) if t is not None])
    if dataset.startswith("synthetic"):
        common = dict(num_points=p.num_points, up_axis=p.up_axis, **options)
        return (get_dataset(dataset, "train", transform=train_tf, **common), get_dataset(dataset, "test", **common))
    common = dict(num_points=p.num_points, use_normals=p.use_normals, up_axis=p.up_axis, **options)
    train = get_dataset(dataset, "train", sampling=p.sampling, resample=True, transform=train_tf, **common)
    test = get_dataset(dataset, "test", sampling=p.test_sampling, resample=p.test_resample, **common)
    return train, test
