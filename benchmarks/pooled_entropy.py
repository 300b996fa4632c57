"""Information entropy of the aggregated (pooled) features of trained ModelNet40 rows (BiPointNet Fig. 4, Fig. 7).

For each row's final checkpoint, every pooling module's output is binarized as the next layer sees it
(sign, sign(0) = +1) over the whole test split, on the fixed point draw 0, in FP32 and eval mode. Per pool:

- ``entropy_bits``: H(sign) per channel (Eq. 5, p = P(+1) estimated over all test clouds), mean over channels;
  1 bit is the maximum (Proposition 1), 0 a channel that is the same for every cloud;
- ``p_plus``: the share of +1 over all channels and clouds (max pooling of BN output drives it to 1, Theorem 1);
- ``constant_channels``: the share of channels with the same sign for every test cloud (they carry nothing).

The paper's Figure 7 draws this entropy over training for BNN, XNOR and BiPointNet; the campaign's runs did not
record it per epoch, so this measures the end point of each curve.

    python benchmarks/pooled_entropy.py --rows pointnet_bnn,pointnet_bnn_ema,pointnet_xnor,pointnet_xnor_ema,pointnet_bipointnet \
        --out benchmarks/results/pooled_entropy.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bipointnet_modelnet40 import add_checkpoint_row_args, measure_checkpoint_rows  # noqa: E402


def sign_counts(model, loader) -> dict:
    """Pool name -> (count of sign +1 per channel (C,), number of pooled rows), over every batch of ``loader``."""
    import torch

    from onebit.analysis.layers import pool_modules

    counts: dict[str, list] = {}

    def hook(name):
        def fn(module, inputs, output):
            y = output[0] if isinstance(output, (tuple, list)) else output
            rows = y.detach().reshape(-1, y.shape[-1])
            pos = (rows >= 0).sum(dim=0).to(torch.float64)
            if name in counts:
                counts[name][0] += pos
                counts[name][1] += rows.shape[0]
            else:
                counts[name] = [pos, rows.shape[0]]
        return fn

    handles = [m.register_forward_hook(hook(name)) for name, m in pool_modules(model)]
    try:
        model.eval()
        with torch.inference_mode():
            for x, _ in loader:
                model(x)
    finally:
        for h in handles:
            h.remove()
    return counts


def entropy_stats(pos, n: int) -> dict:
    """The statistics above from a pool's per-channel +1 counts ``pos`` over ``n`` rows."""
    from onebit.analysis.entropy import binary_entropy

    p = pos / n
    return {"entropy_bits": round(float(binary_entropy(p).mean()), 4), "p_plus": round(float(p.mean()), 4),
            "constant_channels": round(float(((p == 0) | (p == 1)).to(float).mean()), 4), "channels": int(p.numel()),
            "rows": int(n)}


def measure(run_dir: Path, threads: int = 1) -> dict:
    import torch

    from onebit.train.checkpoint import load_model
    from onebit.zoo.build import eval_split

    torch.set_num_threads(threads)
    model, ck = load_model(run_dir / "last.ckpt")
    ds, proto = eval_split(ck["config"], test_seed=0)
    loader = torch.utils.data.DataLoader(ds, batch_size=64, shuffle=False)
    counts = sign_counts(model, loader)
    pools = {name: entropy_stats(pos, n) for name, (pos, n) in counts.items()}
    return {"epochs": int(ck["epoch"]) + 1, "binarize": (ck["config"] or {}).get("binarize"),
            "points": proto.get("points"), "test_shapes": proto.get("test_shapes"), "test_seed": proto.get("test_seed"),
            "pools": pools, "global_pool": next(reversed(pools), None)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_checkpoint_row_args(ap)
    args = ap.parse_args(argv)
    return measure_checkpoint_rows(
        ap, args, argv, "pooled_entropy.py", lambda run_dir: measure(run_dir, args.threads),
        lambda res: ", ".join(f"{k} H={v['entropy_bits']:.3f} P(+1)={v['p_plus']:.3f} "
                              f"constant={v['constant_channels']:.2f}" for k, v in res["pools"].items()))


if __name__ == "__main__":
    raise SystemExit(main())
