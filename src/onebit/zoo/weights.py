"""The zoo's weight files: a model's ``state_dict`` as safetensors, binary layers optionally as signs.

A binary layer (``onebit.nn`` ``Binary*`` with a kernel quantizer) computes with ``Q_w(W)``, never
with the latent ``W`` itself, so for inference ``W`` can be replaced by any ``W̃`` with the same
``Q_w(W̃)`` and output scale. The compact form stores the signs of ``W`` packed 8 per byte
(``KEY#signs``, ``np.packbits`` of the row-major flattened signs, bit 1 = +1) and one magnitude per
output channel (``KEY#mag``; with ``KEY#shift`` for two-level weights such as DAB's):

* form ``"mag"``: ``W̃ = m · signs`` with ``m`` = the channel's mean ``|W|`` (sign binarizers, XNOR-Net
  / BWN scales and ``scale="channel"`` all see the same signs and the same mean ``|W|``);
* form ``"affine"``: ``W̃ = a · signs + b`` with ``(signs, a, b)`` = the quantizer's ``factorize(W)``
  (two-level fits such as DAB refit the same two levels).

:func:`pack_model` keeps a layer's FP32 latent weight wherever neither form reproduces the layer
(checked layer by layer: the same signs, the same binarized weight and output scale to 1e-6
relative). For sign binarizers (BNN, BiPointNet: scales outside the weight, LSR) the binarized
weights are bit-identical, so is inference; quantizers that recompute a per-channel scale from
``W̃`` (XNOR-Net / BWN's mean ``|W|``, DAB's two levels) get it back to float32 rounding (the mean of
n equal floats is not always that float), about 1e-7 relative. The safetensors header's ``__metadata__`` records
``{"format": "onebit-zoo/1", "binary": [{"key", "shape", "form"}, ...]}``.
"""

from __future__ import annotations

import copy
import json
import struct
from typing import Any

import numpy as np

FORMAT = "onebit-zoo/1"
"""The ``format`` recorded in a zoo weights file's safetensors metadata."""
FORMS = ("mag", "affine")
"""The compact forms of a binary layer's weight, tried in this order (see the module docstring)."""


def _expand(signs_packed: np.ndarray, shape: tuple[int, ...], mag: np.ndarray, shift: np.ndarray | None) -> np.ndarray:
    """W̃ = mag · signs (+ shift) per output channel, float32, of ``shape`` (the one reconstruction)."""
    numel = int(np.prod(shape))
    bits = np.unpackbits(np.asarray(signs_packed, np.uint8), count=numel)
    signs = (bits.astype(np.float32) * 2.0 - 1.0).reshape(shape[0], -1)
    w = mag.astype(np.float32)[:, None] * signs
    if shift is not None:
        w = w + shift.astype(np.float32)[:, None]
    return np.ascontiguousarray(w.reshape(shape), dtype=np.float32)


def _binary_layers(model) -> dict[str, Any]:
    """{state_dict key of the weight: module} of the layers with a kernel quantizer."""
    return {f"{n}.weight" if n else "weight": m for n, m in model.named_modules()
            if getattr(m, "kernel_quantizer", None) is not None and hasattr(m, "factorize")}


def _layer_view(mod):
    """What inference uses of a binary layer: signs, Q_w(W), output scale (float64 numpy)."""
    import torch

    with torch.no_grad():
        signs, _, _ = mod.kernel_quantizer.factorize(mod.prepared_weight().detach())
        q = mod.binary_weight().detach()
        s = mod.output_scale()
    return (signs.numpy().copy(), q.double().numpy().copy(),
            None if s is None else s.detach().double().numpy().copy())


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-6, atol=1e-9))


def _try_form(mod, form: str) -> dict[str, np.ndarray] | None:
    """The compact arrays of ``mod`` in ``form`` if they reproduce the layer exactly, else None."""
    import torch

    w = mod.weight.detach().float()
    shape = tuple(w.shape)
    with torch.no_grad():
        signs, a, b = mod.kernel_quantizer.factorize(mod.prepared_weight().detach().float())
    signs_np = signs.reshape(shape[0], -1).numpy()
    if not np.all(np.abs(signs_np) == 1):
        return None
    packed = np.packbits((signs_np.reshape(-1) > 0).astype(np.uint8))
    if form == "mag":
        arrays = {"signs": packed, "mag": w.abs().reshape(shape[0], -1).mean(1).numpy().astype(np.float32)}
    else:
        a_np = a.reshape(-1).expand(shape[0]).numpy().astype(np.float32)
        b_np = b.reshape(-1).expand(shape[0]).numpy().astype(np.float32)
        arrays = {"signs": packed, "mag": a_np, "shift": b_np}
    twin = copy.deepcopy(mod).eval()
    with torch.no_grad():
        twin.weight.copy_(torch.from_numpy(_expand(packed, shape, arrays["mag"], arrays.get("shift"))))
    ref, got = _layer_view(mod.eval()), _layer_view(twin)
    if not np.array_equal(ref[0], got[0]) or not _same(ref[1], got[1]) or not _same(ref[2], got[2]):
        return None
    return arrays


def pack_model(model, compact: bool = True) -> tuple[dict[str, np.ndarray], dict[str, str], dict[str, Any]]:
    """``(tensors, header metadata, storage summary)`` for ``safetensors.numpy.save``.

    ``compact``: binary layers as signs + magnitudes where exact (else their FP32 latent weight).
    """
    sd = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    tensors = {k: v.numpy().copy() for k, v in sd.items()}
    binary, latent = [], []
    for key, mod in (_binary_layers(model).items() if compact else ()):
        if key not in tensors:
            continue
        for form in FORMS:
            arrays = _try_form(mod, form)
            if arrays is not None:
                break
        else:
            latent.append(key)
            continue
        del tensors[key]
        for k, v in arrays.items():
            tensors[f"{key}#{k}"] = v
        binary.append({"key": key, "shape": list(sd[key].shape), "form": form})
    meta = {"format": FORMAT, "binary": json.dumps(binary)}
    n_bin = sum(int(np.prod(b["shape"])) for b in binary)
    n_all = sum(int(v.numel()) for v in sd.values() if v.is_floating_point())
    if binary:
        storage = "signs+scales"
        note = (f"{len(binary)} binary layer(s) ({n_bin:,} weights) stored as 1-bit signs + one FP32 magnitude per "
                "output channel: exact for inference (the layers compute the same binarized weights), not the "
                "FP32 latent weights needed to continue training; every other tensor FP32")
        if latent:
            note += f"; kept as FP32 latent weights (no exact compact form): {', '.join(latent)}"
    else:
        storage, note = "fp32", "the full FP32 state_dict (latent weights included)"
    summary = {"storage": storage, "note": note, "binary_layers": len(binary), "binary_weights": n_bin,
               "float_values": n_all - n_bin, "latent_binary_layers": latent}
    return tensors, meta, summary


def _header(data: bytes, source: str) -> dict[str, Any]:
    try:
        (n,) = struct.unpack("<Q", data[:8])
        return json.loads(data[8:8 + n])
    except (struct.error, ValueError) as e:
        from onebit.zoo import ZooError

        raise ZooError(f"{source}: not a safetensors file ({e})") from None


def state_dict_from_bytes(data: bytes, source: str = "weights") -> dict[str, np.ndarray]:
    """The full state_dict (NumPy arrays; binary layers expanded to W̃) of a zoo weights file's bytes."""
    from safetensors.numpy import load as st_load

    from onebit.zoo import ZooError

    meta = _header(data, source).get("__metadata__") or {}
    if meta.get("format") != FORMAT:
        raise ZooError(f"{source}: not an onebit zoo weights file (format {meta.get('format')!r}, "
                       f"expected {FORMAT!r})")
    arrays = st_load(data)
    sd = {k: np.array(v) for k, v in arrays.items() if "#" not in k}
    for b in json.loads(meta.get("binary", "[]")):
        key, shape = b["key"], tuple(b["shape"])
        try:
            sd[key] = _expand(arrays[f"{key}#signs"], shape, arrays[f"{key}#mag"], arrays.get(f"{key}#shift"))
        except (KeyError, ValueError) as e:
            raise ZooError(f"{source}: binary layer {key!r} is incomplete or malformed ({e})") from None
    return sd


def load_weights(model_config: dict, data: bytes, source: str = "weights"):
    """Rebuild ``model_config``'s model (``onebit.models.from_config``) with the weights in ``data``; eval mode."""
    import torch

    from onebit.models import from_config
    from onebit.zoo import ZooError

    sd = {k: torch.from_numpy(v) for k, v in state_dict_from_bytes(data, source).items()}
    model = from_config(model_config)
    try:
        model.load_state_dict(sd)
    except RuntimeError as e:
        raise ZooError(f"{source}: the weights do not match the model {model_config.get('name')!r}: {e}") from None
    return model.eval()


def save_bytes(model, compact: bool = True) -> tuple[bytes, dict[str, Any]]:
    """The zoo weights file of ``model`` as bytes, and its storage summary."""
    from safetensors.numpy import save

    tensors, meta, summary = pack_model(model, compact)
    return _canonical(save(tensors, metadata=meta)), summary


def _canonical(data: bytes) -> bytes:
    """The same safetensors file with its JSON header in sorted key order: the library writes the header
    from a hash map, so its key order (and the file's sha256) would change from one save to the next."""
    (n,) = struct.unpack("<Q", data[:8])
    header = json.dumps(json.loads(data[8:8 + n]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-(8 + len(header)) % 8)  # the data section stays 8-byte aligned, as the format pads it
    return struct.pack("<Q", len(header)) + header + data[8 + n:]
