"""Export + engine parity on Sketch-A-Net and ResNet-18 (binary convs on packed NHWC bits): exact
integer accumulators per binary conv, close logits, same predictions, on every ISA path."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import onebit
from onebit.export import ExportError
from onebit.runtime import FormatError, load, supported_isas

SIZE, WIDTH, CLASSES = 64, 0.25, 6


def _spec(preset):
    return onebit.convert.resolve_spec(preset, input="ste_sign") if preset == "dab-fbin" else preset


def _strokes(n, size, seed):
    """Sketch-like inputs: a few random bright line segments on black (ink = 1), in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    img = torch.zeros(n, 1, size, size)
    t = torch.linspace(0, 1, 4 * size)
    for i in range(n):
        for _ in range(4):
            p0, p1 = torch.rand(2, generator=g) * (size - 1), torch.rand(2, generator=g) * (size - 1)
            pts = (p0[None] + t[:, None] * (p1 - p0)[None]).round().long()
            img[i, 0, pts[:, 0], pts[:, 1]] = 1.0
    return img


def calibrated_sketch(preset, preact, seed=0, size=SIZE, width=WIDTH):
    """A Sketch-A-Net whose BatchNorms have non-trivial running statistics (a few train-mode batches)."""
    torch.manual_seed(seed)
    m = onebit.models.create("sketch_a_net", CLASSES, binarize=_spec(preset), input_size=size, width=width,
                             preact=preact)
    with torch.no_grad():
        for mod in m.modules():  # non-trivial BN affine parameters (negative slopes included)
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.weight.uniform_(-1.0, 1.5)
                mod.bias.uniform_(-0.5, 0.5)
        m.train()
        for i in range(3):
            m(_strokes(8, size, 100 + i) + 0.05 * torch.rand(8, 1, size, size))
    return m.eval()


def _torch_accumulators(model, x):
    """{conv name: (B, pixels, N) XNOR dots, or [popcount(e AND x) ‖ popcount(x)] for DAB} via hooks."""
    acc, hooks = {}, []
    for name, m in model.named_modules():
        if getattr(m, "input_quantizer", None) is None or not isinstance(m, torch.nn.Conv2d | torch.nn.Linear):
            continue

        def hook(mod, inp, out, name=name):
            signs, a, b = mod.factorize()
            xs = torch.where(inp[0] >= 0, 1.0, -1.0).double()
            if isinstance(mod, torch.nn.Linear):
                cols = xs[:, :, None]                                         # (B, k, 1): one pooled row
            else:
                xs = F.pad(xs, mod._fpad(), value=mod.pad_value)
                cols = F.unfold(xs, mod.kernel_size, stride=mod.stride)      # (B, C·kh·kw, L)
            s = signs.double().reshape(signs.shape[0], -1)                   # (N, C·kh·kw)
            if torch.all(b == 0):
                acc[name] = torch.einsum("nk,bkl->bln", s, cols).round().long()
            else:
                xb, e = (cols > 0).double(), (s > 0).double()
                pe = torch.einsum("nk,bkl->bln", e, xb)
                q = xb.sum(1)[:, :, None].expand_as(pe)
                acc[name] = torch.cat([pe, q], -1).round().long()

        hooks.append(m.register_forward_hook(hook))
    with torch.no_grad():
        logits = model(x)
    for h in hooks:
        h.remove()
    return logits.numpy(), acc


def _check(model, tmp_path, x, isa=None, n_binary=6, **kw):
    path = tmp_path / "m.onebit"
    info = onebit.export(model, path, **kw)
    eng = load(path, isa=isa)
    ref, acc = _torch_accumulators(model.double(), x.double())  # float64 oracle: no host FP32 GEMM in it
    model.float()
    out, dbg = eng.run_debug(x.numpy())
    scale = max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-4 * scale)
    assert (out.argmax(-1) == ref.argmax(-1)).all()
    np.testing.assert_array_equal(eng.run(x.numpy(), threads=2), out)
    np.testing.assert_array_equal(eng.run(x.numpy()[:1], threads=2), out[:1])  # rows split across threads
    assert len(acc) == n_binary, sorted(acc)
    for name, a in acc.items():
        for b in range(x.shape[0]):
            np.testing.assert_array_equal(dbg[b][name]["acc"], a[b].numpy(), err_msg=f"layer {name}")
    return info, eng


@pytest.mark.parametrize("isa", ["avx512", "avx2", "scalar"])
@pytest.mark.parametrize("preset,preact", [("dab-fbin", True), ("bnn", True), ("dab-fbin", False),
                                           ("bnn", False)])
def test_sketch_a_net_parity(preset, preact, isa, tmp_path, monkeypatch):
    if isa not in supported_isas():
        pytest.skip(f"{isa} not supported here")
    monkeypatch.setenv("ONEBIT_ISA", isa)  # the kernel path chosen through the environment
    model = calibrated_sketch(preset, preact, seed=3)
    x = _strokes(3, SIZE, 7) + 0.1 * torch.rand(3, 1, SIZE, SIZE)
    info, eng = _check(model, tmp_path, x)
    assert eng.isa == isa
    assert info["binary_layers"] == 6 and info["float_layers"] == 2
    ops = {o["name"]: o for o in eng.ops}
    want = "and" if preset == "dab-fbin" else "xnor"
    assert all(ops[f"conv{i}.conv"]["product"] == want for i in range(2, 8))
    if preset == "bnn":  # binary -> binary convs: integer thresholds, no float epilogue
        assert all("bound" in ops[f"conv{i}.conv"] for i in range(2, 7))
    if preact:  # random BN slopes: some pools must be AND pools (negative slope after the pool)
        inv = np.unpackbits(eng.tensors[ops["pool2"]["invert"]])
        assert 0 < inv.sum() < len(inv)


@pytest.mark.parametrize("preset", ["bnn", "dab-fbin"])
def test_pad_value_plus_one_and_stride(preset, tmp_path):
    """+1 padding bits (the valid channel bits set, word padding clear) and a strided, padded binary conv:
    conv6 (5x5 on the 5x5 map) with padding 2 and stride 5 still gives one output pixel."""
    model = calibrated_sketch(preset, True, seed=9)
    model.conv3.conv.pad_value = 1.0
    model.conv5.conv.pad_value = 1.0
    model.conv6.conv.stride, model.conv6.conv.padding = (5, 5), (2, 2)
    x = _strokes(2, SIZE, 13) + 0.1 * torch.rand(2, 1, SIZE, SIZE)
    _, eng = _check(model, tmp_path, x)
    im = {o["name"]: o for o in eng.ops if o["op"] == "im2col"}
    assert im["conv3.conv.im2col"]["pad_value"] == 1.0 and im["conv6.conv.im2col"]["stride"] == [5, 5]


def test_padding_and_odd_sizes(tmp_path):
    """28x28 QuickDraw geometry (conv1 3x3/1, conv6 1x1), width 0.3 (channel counts not multiples of 8)."""
    model = calibrated_sketch("bnn", True, seed=5, size=28, width=0.3)
    x = _strokes(2, 28, 9)
    _check(model, tmp_path, x)
    eng = load(tmp_path / "m.onebit")
    with pytest.raises(ValueError, match="expected images"):
        eng.run(np.zeros((1, 1, 32, 32), np.float32))
    out2 = eng.run(x.numpy()[:, 0])  # (B, H, W) for one channel
    np.testing.assert_array_equal(out2, eng.run(x.numpy()))


def test_real_quickdraw_sketches(shared_data, tmp_path):
    import h5py

    path = shared_data / "sketches" / "quickdraw" / "quickdraw_6class_28x28.h5"
    if not path.exists():
        pytest.skip(f"{path} not found")
    with h5py.File(path, "r") as f:
        imgs = np.asarray(f["images"][:16], np.float32) / 255.0  # white strokes on black: ink = 1 already
    x = torch.from_numpy(imgs)[:, None]
    model = calibrated_sketch("dab-fbin", True, seed=11, size=28, width=0.25)
    _check(model, tmp_path, x)


def test_infer_cli_png(tmp_path, capsys):
    import json

    from PIL import Image

    from onebit.cli import main

    model = calibrated_sketch("dab-fbin", True, seed=4)
    path = tmp_path / "m.onebit"
    onebit.export(model, path)
    ink = _strokes(1, 96, 21)[0, 0].numpy()
    png = tmp_path / "s.png"
    Image.fromarray(((1 - ink) * 255).astype(np.uint8)).save(png)  # black ink on white, 96x96
    assert main(["infer", str(path), str(png), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    # the same preprocessing by hand: grayscale, ink = 1 (inverted: light border), resized to 64x64 (bilinear)
    inv = 255 - np.asarray(Image.open(png).convert("L"))
    a = np.asarray(Image.fromarray(inv).resize((SIZE, SIZE), Image.BILINEAR), np.float32) / 255.0
    with torch.no_grad():
        ref = copy.deepcopy(model).double()(torch.from_numpy(a)[None, None].double()).numpy()  # float64 oracle
    assert got["predictions"] == [int(ref.argmax())]
    png_pred = got["predictions"]
    # an HDF5 file of uint8 images with labels (the QuickDraw layout) at the model's size
    import h5py

    imgs = (_strokes(3, SIZE, 22)[:, 0].numpy() * 255).astype(np.uint8)
    with h5py.File(tmp_path / "q.h5", "w") as f:
        f["images"] = imgs
        f["label"] = np.arange(3)
    assert main(["infer", str(path), str(tmp_path / "q.h5"), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    with torch.no_grad():
        ref = copy.deepcopy(model).double()(torch.from_numpy(imgs.astype(np.float32) / 255)[:, None].double()).numpy()
    assert got["predictions"] == ref.argmax(-1).tolist()
    # the image path of `onebit infer` never imports torch
    import subprocess
    import sys

    code = ("import sys\nfrom onebit.cli import main\n"
            f"rc = main(['infer', {str(path)!r}, {str(png)!r}, '--json'])\n"
            "assert 'torch' not in sys.modules\nsys.exit(rc)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["predictions"] == png_pred


@pytest.mark.parametrize("preset", ["dab-wbin", "bwn", None])
def test_real_valued_activations(preset, tmp_path):
    """WBin (real activations × binary weights) and FP32: float GEMMs with float max pools on the engine."""
    model = calibrated_sketch(preset, False, seed=8)
    x = _strokes(2, SIZE, 12) + 0.1 * torch.rand(2, 1, SIZE, SIZE)
    info = onebit.export(model, tmp_path / "m.onebit")
    eng = load(tmp_path / "m.onebit")
    with torch.no_grad():
        ref = model.double()(x.double()).numpy()
    out = eng.run(x.numpy())
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-4 * max(1.0, float(np.abs(ref).max())))
    assert (out.argmax(-1) == ref.argmax(-1)).all()
    assert info["binary_layers"] == 0
    assert sum(o["op"] == "maxpool" and "invert" not in o for o in eng.ops) == 3


def test_tampered_conv_graph_is_rejected(tmp_path):
    import json as _json

    from onebit.runtime.format import read, write

    model = calibrated_sketch("bnn", True, seed=6, size=28, width=0.25)
    path = tmp_path / "m.onebit"
    onebit.export(model, path)
    tensors, graph = read(path)
    g = _json.loads(_json.dumps(graph))
    im = next(o for o in g["ops"] if o["op"] == "im2col")
    im["stride"] = [2, 2]  # output map no longer matches
    write(tmp_path / "bad.onebit", tensors, g)
    with pytest.raises(FormatError, match="output map"):
        load(tmp_path / "bad.onebit")


def calibrated_resnet(preset, preact, seed=0, size=40, **kw):
    torch.manual_seed(seed)
    m = onebit.models.create("resnet18", CLASSES, binarize=_spec(preset), width=0.125, preact=preact, **kw)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
                mod.weight.uniform_(-1.0, 1.5)
                mod.bias.uniform_(-0.5, 0.5)
        m.train()
        for i in range(3):
            m(_strokes(8, size, 200 + i) + 0.05 * torch.rand(8, 1, size, size))
    return m.eval()


@pytest.mark.parametrize("isa", ["avx512", "avx2", "scalar"])
@pytest.mark.parametrize("preset,preact", [("dab-fbin", True), ("bnn", True), ("dab-fbin", False)])
def test_resnet18_parity(preset, preact, isa, tmp_path):
    """BasicBlocks: sign(BN(x)) feeds the binary convs, the float shortcut (or the binary 1x1 downsample)
    is added in float before the ReLU; stride-2 3x3 convs with -1 padding; binary classifier on BN(avg)."""
    if isa not in supported_isas():
        pytest.skip(f"{isa} not supported here")
    model = calibrated_resnet(preset, preact, seed=4)
    x = _strokes(2, 40, 31) + 0.1 * torch.rand(2, 1, 40, 40)
    info, eng = _check(model, tmp_path, x, isa=isa, n_binary=20, input_size=40)
    assert info["binary_layers"] == 20 and info["float_layers"] == 1
    assert sum(o["op"] == "add" for o in eng.ops) == 8


@pytest.mark.parametrize("preset", ["bwn", None])
def test_resnet18_real_valued(preset, tmp_path):
    model = calibrated_resnet(preset, False, seed=5, size=48, float_classifier=preset is None)
    x = _strokes(2, 48, 32)
    info = onebit.export(model, tmp_path / "m.onebit", input_size=48)
    with torch.no_grad():
        ref = model.double()(x.double()).numpy()
    out = load(tmp_path / "m.onebit").run(x.numpy())
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-4 * max(1.0, float(np.abs(ref).max())))
    assert info["binary_layers"] == 0


def test_resnet18_float_classifier_and_refusals(tmp_path):
    model = calibrated_resnet("dab-fbin", True, seed=6, float_classifier=True)
    x = _strokes(2, 40, 33)
    info, _ = _check(model, tmp_path, x, n_binary=19, input_size=40)
    assert info["float_layers"] == 2
    with pytest.raises(ExportError, match="points"):
        onebit.export(model, tmp_path / "x.onebit", points=64)


@pytest.mark.parametrize("model,extra", [("sketch_a_net", ["--input-size", "64", "--width", "0.25"]),
                                         ("resnet18", ["--input-size", "40", "--width", "0.125", "--batch", "2"])])
def test_bench_cli_image_models(model, extra, tmp_path, capsys):
    import json

    from onebit.cli import main

    out = tmp_path / "rows.json"
    rc = main(["bench", "--model", model, *extra, "--rounds", "1", "--min-block", "0.001", "--json", str(out),
               "--profile"])
    assert rc == 0
    rows = {r["runner"]: r for r in json.loads(out.read_text())}
    assert set(rows) == {"torch-eager", "torch-fp32", "engine"}
    assert rows["engine"]["file_bytes"] < rows["torch-fp32"]["file_bytes"] / 4
    assert "engine per-op time" in capsys.readouterr().out


def test_tampered_resnet_graph_is_rejected(tmp_path):
    import json as _json

    from onebit.runtime.format import read, write

    model = calibrated_resnet("dab-fbin", True, seed=7)
    path = tmp_path / "m.onebit"
    onebit.export(model, path, input_size=40)
    tensors, graph = read(path)

    def bad(edit, match):
        g = _json.loads(_json.dumps(graph))
        edit(g)
        write(tmp_path / "bad.onebit", tensors, g)
        with pytest.raises(FormatError, match=match):
            load(tmp_path / "bad.onebit")

    def other_wrong_shape(g):
        adds = [o for o in g["ops"] if o["op"] == "add"]
        adds[-1]["other"] = adds[0]["output"]  # a 8-channel map added to a 64-channel one

    def half_affine_sign(g):
        del next(o for o in g["ops"] if o["op"] == "sign" and "scale" in o)["bias"]

    bad(other_wrong_shape, "add needs")
    bad(half_affine_sign, "affine sign")
    stem = next(o for o in graph["ops"] if o["name"] == "maxpool")
    assert stem["op"] == "maxpool" and stem["padding"] == [1, 1]  # the stem pool: float, padded
