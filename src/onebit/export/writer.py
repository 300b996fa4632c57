"""``export(model, path)`` and ``build_graph(model)``: pick the lowering of the model's family and write
the ``.onebit`` file (:func:`onebit_runtime.format.write`: the exporter reaches the runtime only through
the format)."""

from __future__ import annotations

from pathlib import Path

from .builder import ExportError, _model_info

__all__ = ["build_graph", "export"]


def build_graph(model, points: int | None = None, input_size: int | None = None) -> tuple[dict, dict]:
    """(graph, tensors) of a supported model (PointNet family, DGCNN, PointNet++ SSG / MSG: classification;
    sketch_a_net; resnet18).

    ``points``: fix the number of points per cloud, so EMA-max offsets fold into integer thresholds
    (smaller file; the runtime then refuses other point counts). None keeps them per-run.
    ``input_size``: image models' input side (resnet18: default 224; sketch_a_net: its own).
    """
    from onebit.models.pointnet import PointNet
    from onebit.models.resnet import ResNet
    from onebit.models.sketch_a_net import SketchANet

    if points is not None and (int(points) != points or points < 1):
        raise ExportError(f"export: points must be a positive integer, got {points!r}")
    if isinstance(model, PointNet):
        from .pointnet import pointnet_graph

        return pointnet_graph(model, points)
    from onebit.models.dgcnn import DGCNN
    from onebit.models.pointnet2 import PointNet2

    if isinstance(model, DGCNN | PointNet2):
        if input_size is not None:
            raise ExportError("export: input_size= applies to image models (sketch_a_net, resnet18)")
        from .geometric import dgcnn_graph, pointnet2_graph

        return (dgcnn_graph if isinstance(model, DGCNN) else pointnet2_graph)(model, points)
    if isinstance(model, SketchANet | ResNet) and points is not None:
        raise ExportError(f"export: points= applies to point-cloud models, not to {type(model).__name__}")
    if input_size is not None and (int(input_size) != input_size or input_size < 1):
        raise ExportError(f"export: input_size must be a positive integer, got {input_size!r}")
    if isinstance(model, SketchANet):
        from .conv import _input_size, sketch_a_net_graph

        if input_size is not None and input_size != _input_size(model):
            raise ExportError(f"export: this sketch_a_net was built for input_size {_input_size(model)}, "
                              f"not {input_size}")
        return sketch_a_net_graph(model, _model_info(model))
    if isinstance(model, ResNet):
        from .conv import resnet_graph

        return resnet_graph(model, _model_info(model), int(input_size or getattr(model, "input_size", None) or 224))
    if input_size is not None:
        raise ExportError("export: input_size= applies to image models (sketch_a_net, resnet18)")
    raise ExportError(f"export: model {type(model).__name__} is not supported yet (supported: PointNet family "
                      "'pointnet', 'pointnet_vanilla', 'pointnet_deploy', 'dgcnn', 'pointnet2_ssg', 'pointnet2_msg', "
                      "classification; 'sketch_a_net', 'resnet18')")



def export(model, path, points: int | None = None, input_size: int | None = None) -> dict:
    """Write ``model`` (eval mode is used) to ``path`` as a ``.onebit`` file.

    ``points`` fixes the point count per cloud (EMA-max offsets become integer thresholds).
    Returns a summary: ``{"path", "file_bytes", "ops", "binary_layers", "float_layers"}``.
    """
    from onebit_runtime.format import write

    was = model.training
    model.eval()
    try:
        graph, tensors = build_graph(model, points, input_size)
    finally:
        model.train(was)
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise ExportError(f"export: directory {path.parent} does not exist")
    size = write(path, tensors, graph)
    lin = [op for op in graph["ops"] if op["op"] == "linear"]
    return {"path": str(path), "file_bytes": size, "ops": len(graph["ops"]),
            "binary_layers": sum(op["product"] != "float" for op in lin),
            "float_layers": sum(op["product"] == "float" for op in lin)}
