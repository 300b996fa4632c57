"""Point-cloud protocols: named protocols, serialisation, dataset construction."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

import onebit.data.points  # noqa: F401
from onebit.data.points import ModelNet40, Protocol, build_datasets, get_protocol, protocol_names
from onebit.data.transforms import Jitter, RandomRotate, Shuffle

h5py = pytest.importorskip("h5py")


def write_repacked(folder, n_train=3, n_test=2):
    from onebit.data.points import MODELNET40_CLASSES

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    (folder / "shape_names.txt").write_text("\n".join(MODELNET40_CLASSES) + "\n")
    for split, n in (("train", n_train), ("test", n_test)):
        with h5py.File(folder / f"{split}.h5", "w") as f:
            f["points"] = rng.uniform(-0.5, 0.5, (n, 1024, 3)).astype(np.float32)
            f["label"] = np.arange(n, dtype=np.int64)
    return folder


def test_named_protocols():
    assert protocol_names() == ["bipointnet", "common"]
    common = get_protocol()
    assert common == get_protocol("common") and common.name == "common"
    assert common.num_points == 1024 and not common.test_resample and common.report == ("final", "best")
    assert common.sampling == "first" and common.up_axis == "y"
    bi = get_protocol("bipointnet")
    assert bi.test_resample and bi.train_augment == () and bi.report[0] == "best"
    assert get_protocol("common", num_points=512).num_points == 512
    with pytest.raises(ValueError, match="unknown protocol 'pointnet'"):
        get_protocol("pointnet")


def test_to_dict_roundtrip_yaml():
    p = get_protocol("common", train_augment=["rotate", {"name": "jitter", "sigma": 0.02}])
    d = p.to_dict()
    assert d["train_augment"] == ["rotate", {"name": "jitter", "sigma": 0.02}] and d["report"] == ["final", "best"]
    back = Protocol.from_dict(yaml.safe_load(yaml.safe_dump(d)))
    assert back.to_dict() == d
    assert get_protocol(d) == back
    assert get_protocol({"name": "bipointnet", "num_points": 2048}).test_resample  # dict overrides a named one
    with pytest.raises(ValueError, match="unknown protocol fields"):
        Protocol.from_dict({"num_point": 1})


def test_validation():
    with pytest.raises(ValueError, match="sampling"):
        Protocol(sampling="grid")
    with pytest.raises(ValueError, match="report"):
        Protocol(report=("last",))
    with pytest.raises(ValueError, match="unknown transform"):
        Protocol(train_augment=("spin",))
    with pytest.raises(ValueError, match="up_axis"):
        Protocol(up_axis="x")


def test_train_transform_uses_up_axis():
    tf = get_protocol("common", up_axis="z").train_transform()
    kinds = [type(t) for t in tf.transforms]
    assert kinds == [RandomRotate, Jitter, Shuffle] and tf.transforms[0].axis == "z"
    assert get_protocol("bipointnet").train_transform() is None


def test_build_datasets_common_and_bipointnet(tmp_path):
    root = write_repacked(tmp_path)
    train, test = build_datasets("common", root=root)
    assert isinstance(train, ModelNet40) and train.split == "train" and test.split == "test"
    assert train.resample and not test.resample and train.transform is not None and test.transform is None
    assert torch.equal(test[0][0], test[0][0])  # fixed test set
    torch.manual_seed(0)
    assert not torch.equal(train[0][0], train[0][0])  # augmented
    btrain, btest = build_datasets("bipointnet", root=root)
    assert btest.resample and btest.sampling == "random" and btrain.transform is None
    a, b = btest[1][0], btest[1][0]
    assert not torch.equal(a, b)  # re-drawn at each access ...
    assert torch.equal(torch.sort(a.view(-1)).values, torch.sort(b.view(-1)).values)  # ... from the same cloud


def test_build_synthetic():
    train, test = build_datasets("common", "synthetic_shapes", num_per_class=4, seed=1)
    assert len(train) == 40 and len(test) == 10 and train[0][0].shape == (1024, 3)
    assert test.transform is None and train.transform is not None
    ptrain, ptest = build_datasets("common", "synthetic_parts", num_per_class=2)
    x, (seg, cat) = ptrain[0]  # the augmentation reorders the part labels with the points
    assert x.shape == (1024, 3) and seg.shape == (1024,) and ptest.transform is None
    with pytest.raises(ValueError, match="not 's3dis'"):
        build_datasets("common", "s3dis")


def test_dataloader_workers_reproducible(tmp_path):
    """Augmentation drawn in DataLoader workers is reproducible from torch.manual_seed."""
    root = write_repacked(tmp_path, n_train=4)
    train, _ = build_datasets("common", root=root)

    def epoch():
        loader = torch.utils.data.DataLoader(train, batch_size=2, num_workers=2)
        return torch.cat([x for x, _ in loader])

    torch.manual_seed(0)
    a1, a2 = epoch(), epoch()
    torch.manual_seed(0)
    b1 = epoch()
    assert torch.equal(a1, b1) and not torch.equal(a1, a2)
