"""Point-cloud datasets, protocols and mesh helpers.

Importing this package registers ``modelnet40``, ``modelnet10``, ``shapenet_part``, ``s3dis``,
``synthetic_shapes`` and ``synthetic_parts`` with ``onebit.data.get_dataset``.
"""

from onebit.data import transforms
from onebit.data.errors import DataError
from onebit.data.points.modelnet import (
    MODELNET10_CLASSES,
    MODELNET40_CLASSES,
    ModelNet,
    ModelNet10,
    ModelNet40,
)
from onebit.data.points.protocol import PROTOCOLS, Protocol, build_datasets, get_protocol, protocol_names
from onebit.data.points.s3dis import S3DIS, S3DIS_CLASSES, room_to_blocks
from onebit.data.points.shapenet import (
    SHAPENET_PART_CATEGORIES,
    ShapeNetPart,
    part_to_category,
    shapenet_category_parts,
)
from onebit.data.points.synthetic import SyntheticParts, SyntheticShapes, synthetic_category_parts
from onebit.data.transforms import (
    Compose,
    FPSSample,
    Jitter,
    NormalizeScale,
    PointDropout,
    RandomPerturbRotate,
    RandomRotate,
    RandomSample,
    RandomScale,
    RandomShift,
    Shuffle,
    farthest_point_sample,
)

__all__ = [
    "DataError", "transforms",
    "MODELNET10_CLASSES", "MODELNET40_CLASSES", "ModelNet", "ModelNet10", "ModelNet40",
    "PROTOCOLS", "Protocol", "build_datasets", "get_protocol", "protocol_names",
    "S3DIS", "S3DIS_CLASSES", "room_to_blocks",
    "SHAPENET_PART_CATEGORIES", "ShapeNetPart", "part_to_category", "shapenet_category_parts",
    "SyntheticParts", "SyntheticShapes", "synthetic_category_parts",
    "Compose", "FPSSample", "Jitter", "NormalizeScale", "PointDropout", "RandomPerturbRotate",
    "RandomRotate", "RandomSample", "RandomScale", "RandomShift", "Shuffle", "farthest_point_sample",
]
