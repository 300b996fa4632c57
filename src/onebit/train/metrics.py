"""Evaluation metrics (torchmetrics; synchronised across DDP ranks by torchmetrics itself).

- classification: ``oa`` = correct / total, ``macc`` = mean over classes of per-class recall;
- part segmentation (ShapeNet-part convention, PointNet / BiPointNet): for a shape of category c,
  IoU_p = |pred=p ∧ gt=p| / |pred=p ∨ gt=p| for every part p of c (1 when p is absent from both),
  shape mIoU = mean_p IoU_p; ``instance_miou`` = mean over shapes, ``class_miou`` = mean over
  categories of the per-category mean; ``oa`` = point accuracy;
- semantic segmentation: ``miou`` = mean over classes of IoU (Jaccard), ``oa``, ``macc``.
All values are percentages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torchmetrics import Metric
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

__all__ = ["PartSegIoU", "TaskMetrics", "make_metrics"]


class PartSegIoU(Metric):
    """Instance / class mIoU over per-category part sets (sum states, DDP-safe).

    ``category_parts[c]`` lists the part labels of category c. Without it, the parts of a
    category are the labels seen in its ground truth so far (a fallback that matches the
    standard sets once every part occurs in the evaluated data).
    """

    full_state_update = False

    def __init__(self, num_parts: int, category_parts: Mapping[int, Sequence[int]] | None = None,
                 num_categories: int | None = None, **kw):
        super().__init__(**kw)
        self.num_parts = int(num_parts)
        self.category_parts = {int(k): list(v) for k, v in (category_parts or {}).items()}
        ncat = num_categories or (max(self.category_parts) + 1 if self.category_parts else 64)
        self.num_categories = int(ncat)
        self.add_state("iou_sum", torch.zeros(self.num_categories, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros(self.num_categories, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("correct", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, logits: torch.Tensor, target: torch.Tensor, category: torch.Tensor) -> None:  # noqa: D102
        """Add a batch: logits (B, N, P), part labels (B, N), categories (B,)."""
        # logits (B, N, P), target (B, N), category (B,)
        if logits.dim() != 3 or target.shape != logits.shape[:2]:
            raise ValueError(f"PartSegIoU: expected logits (B, N, P) and target (B, N), got "
                             f"{tuple(logits.shape)} and {tuple(target.shape)}")
        category = category.reshape(-1).long()
        for i in range(logits.shape[0]):
            c = int(category[i])
            if c >= self.num_categories:
                raise ValueError(f"PartSegIoU: category {c} >= num_categories {self.num_categories}")
            gt = target[i].long()
            parts = self.category_parts.get(c)
            if parts:
                idx = torch.as_tensor(parts, device=logits.device)
                pred = idx[logits[i][:, idx].argmax(-1)]
            else:
                pred = logits[i].argmax(-1)
                parts = torch.unique(gt).tolist()
            ious = []
            for p in parts:
                inter = ((pred == p) & (gt == p)).sum()
                union = ((pred == p) | (gt == p)).sum()
                ious.append(1.0 if int(union) == 0 else float(inter) / float(union))
            self.iou_sum[c] += sum(ious) / len(ious)
            self.count[c] += 1
            self.correct += (pred == gt).sum().double()
            self.total += gt.numel()

    def compute(self) -> dict[str, float]:  # noqa: D102
        """``instance_miou``, ``class_miou`` and ``oa`` in percent, over every shape seen."""
        seen = self.count > 0
        n = self.count.sum().clamp_min(1)
        inst = float(self.iou_sum.sum() / n) * 100
        cls = float((self.iou_sum[seen] / self.count[seen]).mean()) * 100 if bool(seen.any()) else 0.0
        oa = float(self.correct / self.total.clamp_min(1)) * 100
        return {"instance_miou": inst, "class_miou": cls, "oa": oa}


class TaskMetrics:
    """Metrics for one task; ``update(output, target)``, ``compute() -> dict``, ``reset()``."""

    def __init__(self, task: str, num_classes: int, *, category_parts=None, num_categories=None,
                 ignore_index: int | None = None, device="cpu"):
        self.task = task
        self.num_classes = int(num_classes)
        self.loss_sum = 0.0
        self.loss_n = 0
        self.device = torch.device(device)
        if task == "cls":
            self.metrics = {
                "oa": MulticlassAccuracy(num_classes, average="micro"),
                "macc": MulticlassAccuracy(num_classes, average="macro"),
            }
        elif task == "semseg":
            self.metrics = {
                "miou": MulticlassJaccardIndex(num_classes, average="macro", ignore_index=ignore_index),
                "oa": MulticlassAccuracy(num_classes, average="micro", ignore_index=ignore_index),
                "macc": MulticlassAccuracy(num_classes, average="macro", ignore_index=ignore_index),
            }
        elif task == "partseg":
            self.metrics = {"partseg": PartSegIoU(num_classes, category_parts, num_categories)}
        else:
            raise ValueError(f"metrics: unknown task {task!r} (expected cls, partseg or semseg)")
        for m in self.metrics.values():
            m.to(device)

    def update(self, output: torch.Tensor, target, loss: float | None = None, n: int = 1) -> None:
        """``output``: logits/log-probs (B, K) or (B, N, K); ``target``: labels, or (labels, category)."""
        if loss is not None:
            self.loss_sum += float(loss) * n
            self.loss_n += n
        output = output.detach().float()
        if self.task == "partseg":
            labels, category = target
            self.metrics["partseg"].update(output, labels, category)
            return
        if self.task == "semseg":
            output = output.reshape(-1, output.shape[-1])
            target = target.reshape(-1)
        for m in self.metrics.values():
            m.update(output, target.long())

    def compute(self) -> dict[str, float]:
        """The task's metrics in percent and the mean ``loss``, summed over DDP ranks."""
        out: dict[str, float] = {}
        for name, m in self.metrics.items():
            v = m.compute()
            if isinstance(v, dict):
                out.update(v)
            else:
                out[name] = float(v) * 100
        loss_sum, loss_n = self.loss_sum, self.loss_n
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            t = torch.tensor([loss_sum, float(loss_n)], dtype=torch.float64, device=self.device)
            torch.distributed.all_reduce(t)
            loss_sum, loss_n = float(t[0]), int(t[1])
        if loss_n:
            out["loss"] = loss_sum / loss_n
        return out

    def reset(self) -> None:
        """Clear the accumulated states and the loss sum."""
        for m in self.metrics.values():
            m.reset()
        self.loss_sum, self.loss_n = 0.0, 0


DEFAULT_SELECT = {"cls": "oa", "partseg": "instance_miou", "semseg": "miou"}
"""Metric that picks ``best.ckpt`` per task when ``eval.select`` is not set."""


def make_metrics(task: str, num_classes: int, **kw) -> TaskMetrics:
    """``TaskMetrics(task, num_classes, **kw)``."""
    return TaskMetrics(task, num_classes, **kw)
