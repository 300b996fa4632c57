"""Generate one config per row of the BiPointNet paper's tables (run: python configs/bipointnet/_generate.py).

Full schedules as in the paper / official code (Adam 1e-3, no weight decay, cosine annealing over
the run, seed 666): ModelNet40 classification 200 epochs (BiPointNet protocol: 1024 points
re-sampled at every access, no augmentation), ShapeNet Part 250 epochs (2048 points),
S3DIS 128 epochs (4096 points, 9 features, Area 5 held out, class weights (max/freq)^(1/3)).
The official code trains on 8 GPUs with 32 clouds per GPU; here batch_size is per process, so
`torchrun --nproc_per_node 8` reproduces the official global batch of 256.
"""

from __future__ import annotations

from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent

# method -> (binarize value, aggregation label); pool variants are generated below
METHODS = {
    "bnn": "bnn",
    "irnet": "irnet",
    "bireal": "bireal",
    "abc": "abc",
    "xnor++": "xnor++",
    "xnor": "xnor",
}
# paper Table 2 OA on ModelNet40 (PointNet with T-Nets)
TABLE2 = {
    ("fp", "max"): 88.2, ("fp", "avg"): 86.5,
    ("bnn", "max"): 7.1, ("bnn", "ema-avg"): 11.3, ("bnn", "ema-max"): 16.2,
    ("irnet", "max"): 7.3, ("irnet", "ema-avg"): 22.0, ("irnet", "ema-max"): 63.5,
    ("bireal", "max"): 4.0, ("bireal", "ema-avg"): 77.0, ("bireal", "ema-max"): 77.5,
    ("abc", "max"): 4.1, ("abc", "ema-avg"): 68.9, ("abc", "ema-max"): 77.8,
    ("xnor++", "max"): 4.1, ("xnor++", "ema-avg"): 73.8, ("xnor++", "ema-max"): 78.4,
    ("xnor", "max"): 64.9, ("xnor", "ema-avg"): 78.2, ("xnor", "ema-max"): 81.9,
    ("bipointnet", "max"): 4.1, ("bipointnet", "ema-avg"): 82.5, ("bipointnet", "ema-max"): 86.4,
}
TABLE3 = {  # backbone -> (FP, XNOR, ours) OA, and the aggregation of FP/XNOR and of ours
    "pointnet_vanilla": ((86.8, 61.0, 85.6), "max", "ema-max"),
    "pointnet2_ssg": ((90.0, 63.1, 87.8), "max", "ema-max"),
    "pointcnn": ((90.0, 83.0, 83.8), "avg", "ema-avg"),
    "dgcnn": ((89.2, 51.5, 83.4), "max", "ema-max"),
    "pointconv": ((90.8, 83.1, 87.9), None, None),
}
# Table 1: ShapeNet Parts mIoU and S3DIS mIoU / OA per (method, aggregation)
TABLE1 = {
    ("fp", "max"): (84.3, 54.4, 83.5), ("fp", "avg"): (84.0, 51.5, 81.5),
    ("bnn", "max"): (54.0, 9.5, 45.0), ("bnn-lsr", "max"): (58.7, 2.0, 25.4),
    ("bnn", "ema-avg"): (53.0, 9.9, 46.8), ("bnn", "ema-max"): (47.3, 8.5, 47.2),
    ("bipointnet", "ema-avg"): (80.3, 40.9, 74.9), ("bipointnet", "ema-max"): (80.6, 44.3, 76.7),
}

COMMON = {
    "seed": 666,
    "optim": {"name": "adam", "lr": 0.001, "weight_decay": 0.0},
    "schedule": {"name": "cosine", "eta_min": 0.0},
    "num_workers": 4,
}


def binarize_value(method: str, pool: str | None):
    """The config's ``binarize`` for a method and aggregation."""
    if method == "fp":
        return None
    if method == "bipointnet":
        return "bipointnet" if pool in (None, "ema-max") else {"preset": "bipointnet", "pool": pool}
    if method == "bnn-lsr":
        return {"preset": "bnn", "scale": "lsr"}
    if method == "dab":  # DAB-Net weights (two levels, Algorithm 1+2) + sign activations + EMA-max + LSR
        return {"preset": "bipointnet", "weight": "dab", "dab_preprocess": True}
    return METHODS[method] if pool in (None, "max") else {"preset": METHODS[method], "pool": pool}


def model_block(name: str, method: str, pool: str | None) -> dict:
    opts = {}
    if method == "fp" and pool not in (None, "max"):
        opts["pool"] = pool
    return {"name": name, "options": opts}


def write(path: Path, header: str, cfg: dict) -> None:
    text = "".join(f"# {line}\n" if line else "#\n" for line in header.strip().splitlines())
    path.write_text(text + yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None))


def cls_config(model: str, method: str, pool: str | None) -> dict:
    return {
        "model": model_block(model, method, pool),
        "binarize": binarize_value(method, pool),
        "data": {"name": "modelnet40", "protocol": "bipointnet"},
        "epochs": 200,
        "batch_size": 32,
        **COMMON,
        "loss": {"tnet_reg": 0.001, "official_reg": False},
    }


def main() -> None:
    written = []
    # Table 1/2: PointNet (with T-Nets) on ModelNet40
    rows = [("fp", "max"), ("fp", "avg"), ("bnn-lsr", "max")]
    rows += [(m, p) for m in (*METHODS, "bipointnet") for p in ("max", "ema-avg", "ema-max")]
    for method, pool in rows:
        suffix = "" if pool == "max" or (method == "bipointnet" and pool == "ema-max") else f"_{pool}"
        if method == "bipointnet" and pool == "max":
            suffix = "_max"
        name = f"pointnet_{method.replace('-', '_')}{suffix}"
        if method == "fp" and pool == "avg":
            name = "pointnet_fp_avg"
        paper = TABLE2.get(("bnn", pool) if method == "bnn-lsr" else (method, pool))
        if method == "bnn-lsr":
            paper = 4.1
        header = (f"BiPointNet Table 1/2: PointNet, {method}, aggregation {pool}; paper ModelNet40 OA {paper}\n"
                  f"onebit train configs/bipointnet/{name}.yaml --out runs/{name}")
        write(HERE / f"{name}.yaml", header, cls_config("pointnet", method, pool))
        written.append(name)
    # Table 3: other backbones (FP, XNOR, ours) and the DAB row on vanilla PointNet
    for backbone, ((fp, xnor, ours), agg, our_agg) in TABLE3.items():
        for method, pool, paper in (("fp", agg, fp), ("xnor", agg, xnor), ("bipointnet", our_agg, ours)):
            name = f"{backbone}_{method}"
            header = (f"BiPointNet Table 3: {backbone}, {method}, aggregation {pool or 'built-in'}; paper OA {paper}\n"
                      f"onebit train configs/bipointnet/{name}.yaml --out runs/{name}")
            write(HERE / f"{name}.yaml", header, cls_config(backbone, method, pool))
            written.append(name)
    name = "pointnet_vanilla_dab"
    write(HERE / f"{name}.yaml",
          "Not in the paper: DAB-Net two-level weights (Algorithm 1, with Algorithm 2 preprocessing) + sign\n"
          "activations + EMA-max + LSR on vanilla PointNet (compare with pointnet_vanilla_bipointnet, 85.6)\n"
          f"onebit train configs/bipointnet/{name}.yaml --out runs/{name}",
          cls_config("pointnet_vanilla", "dab", "ema-max"))
    written.append(name)
    # Table 1: part segmentation (ShapeNet Parts) and semantic segmentation (S3DIS)
    for (method, pool), (partseg, s3dis_miou, s3dis_oa) in TABLE1.items():
        tag = f"{method.replace('-', '_')}" + ("" if (pool == "max" or (method == "bipointnet" and pool == "ema-max"))
                                               else f"_{pool}")
        base = {"model": model_block("pointnet", method, pool), "binarize": binarize_value(method, pool)}
        name = f"shapenet_pointnet_{tag}"
        cfg = {**base, "data": {"name": "shapenet_part", "options": {"num_points": 2048}},
               "epochs": 250, "batch_size": 32, **COMMON, "loss": {"tnet_reg": 0.001},
               "eval": {"select": "instance_miou"}}
        write(HERE / f"{name}.yaml",
              f"BiPointNet Table 1: ShapeNet Parts, PointNet, {method}, aggregation {pool}; paper instance mIoU "
              f"{partseg}\nonebit train configs/bipointnet/{name}.yaml --out runs/{name}", cfg)
        written.append(name)
        name = f"s3dis_pointnet_{tag}"
        cfg = {**base, "data": {"name": "s3dis", "options": {"num_points": 4096, "test_area": 5}},
               "epochs": 128, "batch_size": 32, **COMMON,
               "loss": {"tnet_reg": 0.001, "class_weights": "inverse_cube_root"}, "eval": {"select": "miou"}}
        write(HERE / f"{name}.yaml",
              f"BiPointNet Table 1: S3DIS (Area 5), PointNet, {method}, aggregation {pool}; paper mIoU {s3dis_miou}, "
              f"OA {s3dis_oa}\nonebit train configs/bipointnet/{name}.yaml --out runs/{name}", cfg)
        written.append(name)
    print(f"wrote {len(written)} configs to {HERE}")


if __name__ == "__main__":
    main()
