"""PointNet family lowering (``pointnet``, ``pointnet_vanilla``, ``pointnet_deploy``; classification):
input / feature T-Nets as pooled float branches + ``bmm``, the shared MLPs as per-point linear ops, the
(EMA-)max pool fused into the last layer before it (OR pooling of thresholded bits), the head."""

from __future__ import annotations

from .builder import ExportError, _Builder, _model_info

__all__ = ["pointnet_graph"]


def pointnet_graph(model, points: int | None = None) -> tuple[dict, dict]:
    """(graph, tensors) of a PointNet-family classifier; ``points`` fixes the point count (see
    :func:`onebit.export.build_graph`)."""
    if model.task != "cls":
        raise ExportError(f"export: {model.model_name} task {model.task!r} is not supported (classification only)")
    b = _Builder(model, model.in_channels, points)
    x = b.input
    if model.input_tnet is not None:
        if model.in_channels != 3:
            raise ExportError("export: the input T-Net is supported for xyz-only input (in_channels=3)")
        a = _tnet(b, model.input_tnet, x)
        x = b.bmm(x, a)
    local = b.mlp(model.mlp1, x)
    if model.feature_tnet is not None:
        a = _tnet(b, model.feature_tnet, local)
        local = b.bmm(local, a)
    g = b.pool(model.pool, b.mlp(model.mlp2, local))
    h = b.mlp(model.head.mlp, g)
    out = b.linear(model.head.out, h)
    info = _model_info(model)
    return b.lower(out, info)



def _tnet(b: _Builder, t, x):
    h = b.pool(t.pool, b.mlp(t.mlp, x))
    h = b.mlp(t.fc, h)
    eye = t.identity.detach().double().cpu().numpy().reshape(-1)
    return b.linear(t.out, h, extra_bias=eye)  # + I folded into the output bias
