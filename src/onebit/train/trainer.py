"""The one trainer for points and sketches: plain PyTorch + ``torch.distributed`` DDP.

``run(config, out_dir, resume=False, progress=True) -> RunResult``. Single process without
``torchrun``; under ``torchrun`` every rank trains its DistributedSampler shard, evaluation is
sharded without padding, and rank 0 writes the files. See docs/training.md.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import math
import os
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from onebit.train.checkpoint import (
    CheckpointError,
    code_version,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from onebit.train.config import ConfigError, resolve, save_config
from onebit.train.distributed import DistInfo, EvalShardSampler, barrier, cleanup, init_distributed
from onebit.train.logging import RunLogger, log
from onebit.train.losses import TaskLoss, inverse_cube_root_weights
from onebit.train.metrics import DEFAULT_SELECT, TaskMetrics

__all__ = ["RunResult", "Trainer", "run", "build_datasets", "build_model", "evaluate",
           "KILL_ENV"]

# test hook: SIGKILL this process right after the checkpoint of epoch k is written
KILL_ENV = "ONEBIT_KILL_AFTER_EPOCH"
"""Environment variable of the kill-and-resume test hook: SIGKILL after that epoch's checkpoint."""


@dataclass
class RunResult:
    """What a run produced: final and best eval metrics, their epochs and the files written."""

    out_dir: Path
    final: dict[str, float]
    best: dict[str, float]
    best_epoch: int
    select: str
    last_ckpt: Path
    best_ckpt: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    amp: bool = False  # whether bf16 autocast ran (config amp auto | bf16 | off, resolved on this host)


def _epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """A 63-bit seed derived from (seed, epoch, rank): each epoch's randomness is independent of
    how many epochs ran before in this process, which makes kill + resume exact."""
    h = hashlib.sha256(f"onebit/{seed}/{epoch}/{rank}".encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch from ``seed``."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


# ------------------------------------------------------------------------------------ building


def _dataset_options(cfg: dict, split_key: str) -> dict[str, Any]:
    d = cfg["data"]
    opts = dict(d["options"])
    opts.update(d["train_options"] if split_key == "train" else d["eval_options"])
    return opts


def build_datasets(cfg: dict, *, train: bool = True, eval: bool = True):
    """``(train_ds, eval_ds, task)`` from the config's ``data`` section (either may be None).

    With ``data.protocol`` (a name or dict, ``onebit.data.points.protocol``) the protocol builds
    both splits (points, sampling, augmentation, fixed or re-drawn test set); ``data.options``
    then go to the dataset factory.
    """
    from onebit.data import dataset_entry, get_dataset, load_all

    load_all()
    d = cfg["data"]
    try:
        entry = dataset_entry(d["name"])
    except KeyError as e:
        raise ConfigError(f"data.name: {e.args[0]}") from None
    task = cfg.get("task") or entry.task
    if d["protocol"] is not None:
        from onebit.data.points.protocol import build_datasets as protocol_datasets

        if d["train_options"] or d["eval_options"]:
            raise ConfigError("data.train_options / data.eval_options cannot be combined with data.protocol "
                              "(the protocol decides the per-split options)")
        if (d["train_split"], d["eval_split"]) != ("train", "test"):
            raise ConfigError("data.protocol builds the train/test splits; leave data.train_split/eval_split")
        try:
            train_ds, eval_ds = protocol_datasets(d["protocol"], dataset=d["name"], **d["options"])
        except (ValueError, TypeError) as e:
            raise ConfigError(f"data.protocol: {e}") from None
        train_ds, eval_ds = (train_ds if train else None), (eval_ds if eval else None)
    else:
        train_ds = get_dataset(d["name"], d["train_split"], **_dataset_options(cfg, "train")) if train else None
        eval_ds = get_dataset(d["name"], d["eval_split"], **_dataset_options(cfg, "eval")) if eval else None
    seed = cfg.get("seed", 0)
    if train and d.get("train_subset"):
        train_ds = SubsetView(train_ds, d["train_subset"], seed)
    if eval and d.get("eval_subset"):
        eval_ds = SubsetView(eval_ds, d["eval_subset"], seed + 1)
    return (train_ds if train else None), (eval_ds if eval else None), task


class SubsetView(torch.utils.data.Dataset):
    """A fixed random subset of ``n`` items (seeded; for reduced schedules). Dataset attributes
    (num_classes, class_names, category_parts, ...) are forwarded to the full dataset."""

    def __init__(self, dataset, n: int, seed: int = 0):
        self.dataset = dataset
        g = torch.Generator().manual_seed(int(seed))
        total = len(dataset)
        self.indices = torch.randperm(total, generator=g)[: min(int(n), total)].sort().values.tolist()

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        return self.dataset[self.indices[i]]

    def __getattr__(self, name: str):
        if name in ("dataset", "indices") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.dataset, name)


def _builder_params(model_name: str) -> set[str]:
    from onebit.models import entry

    return set(inspect.signature(entry(model_name).builder).parameters)


def resolve_binarize(b):
    """The config's ``binarize``: None, a preset name, a full spec dict, or ``{preset: NAME, **overrides}``
    (``resolve_spec(NAME, **overrides)``, e.g. ``{preset: bnn, scale: lsr}`` or
    ``{preset: xnor, pool: ema-max}``). Returned as what ``onebit.models.create`` takes."""
    if isinstance(b, dict) and "preset" in b:
        from onebit.convert import resolve_spec

        rest = {k: v for k, v in b.items() if k != "preset"}
        try:
            return resolve_spec(b["preset"], **rest).to_dict()
        except Exception as e:
            raise ConfigError(f"binarize: {e}") from None
    return b


def build_model(cfg: dict, dataset, task: str) -> nn.Module:
    """``onebit.models.create`` with classes (and, when the builder takes them and the config does
    not set them, ``in_channels`` / ``num_categories``) taken from the dataset."""
    from onebit.models import create

    name = cfg["model"]["name"]
    try:
        params = _builder_params(name)
    except KeyError as e:
        raise ConfigError(f"model.name: {e.args[0]}") from None
    options = dict(cfg["model"]["options"])
    num_classes = cfg["data"]["num_classes"] or getattr(dataset, "num_classes", None)
    if not num_classes:
        raise ConfigError(f"dataset {cfg['data']['name']!r} exposes no num_classes; set data.num_classes")
    if "in_channels" in params and "in_channels" not in options and len(dataset) > 0:
        x = dataset[0][0]
        if isinstance(x, torch.Tensor) and x.dim() == 2:  # points (N, C)
            options["in_channels"] = int(x.shape[-1])
    if task == "partseg" and "num_categories" in params and "num_categories" not in options:
        ncat = getattr(dataset, "num_categories", None)
        if ncat:
            options["num_categories"] = int(ncat)
    binarize = resolve_binarize(cfg["binarize"])
    return create(name, num_classes=int(num_classes), task=task, binarize=binarize, **options)


def _binarized_weights(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if getattr(m, "kernel_quantizer", None) is not None]


def _dab_layers(model: nn.Module, spec: dict | None) -> tuple[list[nn.Module], str]:
    """Layers whose latent weights get DAB-Net Algorithm 2 after each step, and the centring mode:
    every weight-binarized layer when the spec sets ``dab_preprocess`` (the DAB presets binarize with
    DAB only; ``{preset: xnor, dab_preprocess: true}`` separates Algorithm 2 from DAB's fit)."""
    if not spec or not spec.get("dab_preprocess"):
        return [], "filter"
    mode = spec["dab_preprocess"] if isinstance(spec["dab_preprocess"], str) else "filter"
    return [m for _, m in _binarized_weights(model)], mode


def build_optimizer(model: nn.Module, cfg: dict) -> torch.optim.Optimizer:
    """Adam / AdamW / SGD. Binarized layers' latent weights get no weight decay unless
    ``optim.binary_weight_decay`` (DAB-Net: no weight decay on the binarized weights)."""
    o = cfg["optim"]
    wd = float(o["weight_decay"])
    binary = {id(m.weight) for _, m in _binarized_weights(model) if isinstance(getattr(m, "weight", None),
                                                                                 torch.Tensor)}
    decay, no_decay = [], []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        (no_decay if (id(p) in binary and not o["binary_weight_decay"]) else decay).append(p)
    groups = [{"params": decay, "weight_decay": wd}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    lr = float(o["lr"])
    # fused: one kernel over all parameters instead of a Python loop of small ops, the same update
    # (benchmarks/train_step_ab.py --ab optimizer); only where torch has the fused kernel
    fused = o["fused"] and all(p.device.type in ("cpu", "cuda") for g in groups for p in g["params"])
    kw = {"fused": True} if fused else {}
    if o["name"] == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=tuple(o["betas"]), **kw)
    if o["name"] == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(o["betas"]), **kw)
    return torch.optim.SGD(groups, lr=lr, momentum=float(o["momentum"]), nesterov=bool(o["nesterov"]), **kw)


def build_scheduler(opt: torch.optim.Optimizer, cfg: dict):
    """Per-epoch LR schedule. cosine: CosineAnnealingLR(T_max = epochs, eta_min) (BiPointNet);
    step: lr_e = max(lr / 2^floor(e / interval), min_lr) (DAB-Net); constant."""
    s = cfg["schedule"]
    if s["name"] == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=s["t_max"] or cfg["epochs"],
                                                          eta_min=float(s["eta_min"]))
    if s["name"] == "step":
        base, interval, floor = float(cfg["optim"]["lr"]), int(s["interval"]), float(s["min_lr"])
        return torch.optim.lr_scheduler.LambdaLR(
            opt, lambda e: max(0.5 ** (e // interval), floor / base))
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 1.0)


def _label_counts(ds, num_classes: int) -> torch.Tensor:
    for attr in ("label_counts", "class_counts"):
        v = getattr(ds, attr, None)
        if v is not None:
            return torch.as_tensor(np.asarray(v), dtype=torch.float64)
    counts = torch.zeros(num_classes, dtype=torch.float64)
    for i in range(len(ds)):
        y = ds[i][1]
        y = y[0] if isinstance(y, (tuple, list)) else y
        counts += torch.bincount(torch.as_tensor(y).reshape(-1).long(), minlength=num_classes)[:num_classes]
    return counts


def _category_parts(ds) -> tuple[dict[int, list[int]] | None, int | None]:
    cp = getattr(ds, "category_parts", None)
    ncat = getattr(ds, "num_categories", None)
    if cp is None:
        return None, ncat
    if isinstance(cp, (list, tuple)):
        return {i: list(v) for i, v in enumerate(cp)}, ncat or len(cp)
    names = list(getattr(ds, "category_names", []) or [])
    out = {}
    for k, v in cp.items():
        out[names.index(k) if isinstance(k, str) else int(k)] = list(v)
    return out, ncat or len(out)


# ------------------------------------------------------------------------------------ batches


def _to(x, device):
    if isinstance(x, torch.Tensor):
        return x.to(device, non_blocking=True)
    if isinstance(x, (list, tuple)):
        return type(x)(_to(v, device) for v in x)
    return x


class _Forward:
    """Calls the model the way its task needs (part segmentation passes the category)."""

    def __init__(self, model: nn.Module, task: str, domain: str):
        self.task = task
        self.base_dims = 4 if domain == "sketch" else 3
        fwd = inspect.signature(model.forward).parameters
        self.pass_category = task == "partseg" and "category" in fwd

    def labels(self, target):
        return target[0] if self.task == "partseg" else target

    def __call__(self, model: nn.Module, x: torch.Tensor, target) -> torch.Tensor:
        if self.pass_category:
            return model(x, target[1])
        return model(x)

    def eval_logprobs(self, model, x, target) -> tuple[torch.Tensor, bool]:
        """Model output; a batch with one extra dim (B, ncrops, ...) is multi-crop: the result is
        the mean over crops of log_softmax (DAB-Net's ten-crop testing)."""
        if x.dim() == self.base_dims + 1:
            b, k = x.shape[:2]
            out = self(model, x.reshape(b * k, *x.shape[2:]), target)
            logp = F.log_softmax(out.float(), dim=-1).reshape(b, k, *out.shape[1:]).mean(1)
            return logp, True
        return self(model, x, target), False


@torch.no_grad()
def evaluate(model: nn.Module, loader, task: str, num_classes: int, *, domain: str = "points",
             loss_fn: TaskLoss | None = None, device="cpu", amp: bool = False, category_parts=None,
             num_categories=None, progress: bool = False) -> dict[str, float]:
    """Metrics of ``model`` over ``loader`` (all ranks call it; torchmetrics syncs the states)."""
    # the unwrapped module: a DDP forward would broadcast buffers, a collective that deadlocks when
    # ranks hold different numbers of eval batches (the shards are unpadded)
    model = _unwrap(model)
    model.eval()
    fwd = _Forward(model, task, domain)
    metrics = TaskMetrics(task, num_classes, category_parts=category_parts, num_categories=num_categories,
                          device=device)
    dev = torch.device(device)
    it = loader
    if progress:
        from tqdm import tqdm

        it = tqdm(loader, desc="eval", leave=False, dynamic_ncols=True)
    for x, target in it:
        x, target = _to(x, dev), _to(target, dev)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            out, is_logp = fwd.eval_logprobs(model, x, target)
        out = out.float()
        labels = fwd.labels(target)
        if is_logp:
            loss = F.nll_loss(out.reshape(-1, out.shape[-1]), labels.reshape(-1).long())
        elif loss_fn is not None:
            loss = loss_fn(out, labels)
        else:
            loss = None
        metrics.update(out, target if task == "partseg" else labels,
                       None if loss is None else float(loss), n=int(labels.shape[0]))
    return metrics.compute()


def _unwrap(model: nn.Module) -> nn.Module:
    model = getattr(model, "_orig_mod", model)  # torch.compile
    return getattr(model, "module", model)  # DDP


# ------------------------------------------------------------------------------------ trainer


class Trainer:
    """One training run of ``config`` into ``out_dir`` (``run()`` builds one and calls ``fit``)."""
    def __init__(self, config: dict, out_dir: str | Path, resume: bool = False, progress: bool = True):
        self.cfg = resolve(config)
        self.out = Path(out_dir)
        self.resume = resume
        self.progress = progress and self.cfg["log"]["progress"]

    # -- set-up ----------------------------------------------------------------------------------
    def _setup(self, dist: DistInfo) -> None:
        cfg = self.cfg
        if cfg["threads"]:
            torch.set_num_threads(int(cfg["threads"]))
        if cfg["deterministic"]:
            torch.use_deterministic_algorithms(True, warn_only=True)
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        self.dist = dist
        self.device = dist.device
        from onebit.train.amp import resolve_amp

        self.amp = resolve_amp(cfg["amp"], self.device)  # auto | bf16 | off -> on/off for this host
        from onebit.train.allocator import resolve_allocator

        # freed activation buffers stay in the heap for the next step instead of going back to the kernel
        self.malloc_reuse = resolve_allocator(cfg["allocator"], self.device)
        self.ckpt = None
        if self.resume:
            path = self.out / "last.ckpt"
            if not path.exists():
                raise CheckpointError(f"{path}: --resume given but there is no checkpoint to resume from")
            self.ckpt = load_checkpoint(path)  # CheckpointError on a corrupt file: never a silent restart
            old = self.ckpt.get("config") or {}
            diff = sorted(k for k in set(old) | set(cfg) if k != "epochs" and old.get(k) != cfg.get(k))
            if diff:
                log(f"resume: config differs from the checkpoint's in {diff}; using the new values",
                    dist.is_main)
        if dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            save_config(cfg, self.out / "config.yaml")
            if not self.resume:  # a fresh run in an old directory must not leave the old run's best
                (self.out / "best.ckpt").unlink(missing_ok=True)

        seed_everything(cfg["seed"])
        self.train_ds, self.eval_ds, self.task = build_datasets(cfg)
        from onebit.data import dataset_entry

        self.domain = dataset_entry(cfg["data"]["name"]).domain
        seed_everything(cfg["seed"])  # model init independent of dataset construction
        model = build_model(cfg, self.train_ds, self.task)
        self.num_classes = int(model.onebit_config["num_classes"])
        self.spec = model.onebit_config.get("binarize")
        model.to(self.device)
        self.raw_model = model

        bs = cfg["batch_size"]
        self.train_sampler = torch.utils.data.DistributedSampler(
            self.train_ds, num_replicas=dist.world_size, rank=dist.rank, shuffle=True, seed=cfg["seed"])
        self.loader_gen = torch.Generator()
        per_rank = len(self.train_sampler)
        self.train_loader = torch.utils.data.DataLoader(
            self.train_ds, batch_size=bs, sampler=self.train_sampler, num_workers=cfg["num_workers"],
            drop_last=per_rank > bs,  # no 1-sample BatchNorm batches
            generator=self.loader_gen, pin_memory=self.device.type == "cuda",
            persistent_workers=False)
        self.eval_loader = torch.utils.data.DataLoader(
            self.eval_ds, batch_size=cfg["eval_batch_size"] or bs,
            sampler=EvalShardSampler(len(self.eval_ds), dist.rank, dist.world_size),
            num_workers=cfg["num_workers"], pin_memory=self.device.type == "cuda")
        if len(self.train_loader) == 0:
            raise ConfigError(f"dataset {cfg['data']['name']!r} split {cfg['data']['train_split']!r} is empty")

        self.start_epoch = 0
        if self.ckpt is not None:
            try:
                model.load_state_dict(self.ckpt["state_dict"])
            except RuntimeError as e:
                raise CheckpointError(f"{self.out / 'last.ckpt'}: state_dict does not match the model: {e}") from None
            self.start_epoch = int(self.ckpt["epoch"]) + 1
        # No data-init pass: LSR's α is a Parameter from construction (so the optimizer built below
        # holds it) and initialises itself in place on the first training batch (Eq. 9).

        if cfg["sync_bn"] and dist.distributed:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            self.raw_model = model
        self.model = model
        if dist.distributed:
            self.model = nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if cfg["compile"]:
            self.model = torch.compile(self.model)

        self.optimizer = build_optimizer(self.raw_model, cfg)
        self.scheduler = build_scheduler(self.optimizer, cfg)
        self.best = {"metric": None, "value": -math.inf, "epoch": -1, "metrics": {}}
        if self.ckpt is not None:
            self.optimizer.load_state_dict(self.ckpt["optimizer"])
            self.scheduler.load_state_dict(self.ckpt["scheduler"])
            self.best = dict(self.ckpt.get("best") or self.best)
            if "rng" in self.ckpt:
                set_rng_state(self.ckpt["rng"])

        lc = cfg["loss"]
        weights = lc["class_weights"]
        if weights == "inverse_cube_root":
            weights = inverse_cube_root_weights(_label_counts(self.train_ds, self.num_classes))
        self.loss_fn = TaskLoss(lc["name"], lc["label_smoothing"], weights, lc["tnet_reg"],
                                lc["official_reg"]).to(self.device)
        self.category_parts, self.num_categories = _category_parts(self.train_ds)
        self.select = cfg["eval"]["select"] or DEFAULT_SELECT[self.task]
        self.dab_layers, self.dab_mode = _dab_layers(self.raw_model, self.spec)
        if self.dab_layers and self.ckpt is None:
            self._dab_project()  # Algorithm 2 also holds for the initial latent weights
        self.fwd = _Forward(self.raw_model, self.task, self.domain)
        self.recorder = self._make_recorder() if dist.is_main and cfg["diagnostics"] else None
        self.logger = RunLogger(self.out, csv_log=cfg["log"]["csv"], tensorboard=cfg["log"]["tensorboard"],
                                enabled=dist.is_main, resume_epoch=self.start_epoch - 1)
        self.code_version = code_version() if dist.is_main else ""

    @torch.no_grad()
    def _dab_project(self) -> None:
        """DAB-Net Algorithm 2 on the latent weights of the DAB-binarized layers: mean-centre, clamp."""
        from onebit.quantizers.dab import center_and_clamp_

        for m in self.dab_layers:
            center_and_clamp_(m.weight, self.dab_mode)

    def _make_recorder(self):
        try:
            from onebit.analysis.recorder import DiagnosticsRecorder
        except Exception as e:  # the analysis part is optional for training
            log(f"diagnostics skipped: onebit.analysis.recorder unavailable ({type(e).__name__}: {e})")
            return None
        try:
            return DiagnosticsRecorder(self.raw_model, self.out, every=self.cfg["diagnostics_every"])
        except Exception as e:
            log(f"diagnostics skipped: DiagnosticsRecorder failed to start ({type(e).__name__}: {e})")
            return None

    def _seed_epoch(self, epoch: int) -> None:
        seed_everything(_epoch_seed(self.cfg["seed"], epoch, self.dist.rank))
        self.train_sampler.set_epoch(epoch)
        self.loader_gen.manual_seed(_epoch_seed(self.cfg["seed"], epoch, -1))

    # -- loop ------------------------------------------------------------------------------------
    def _train_epoch(self, epoch: int) -> dict[str, float]:
        from onebit.quantizers import update_schedules

        cfg = self.cfg
        self._seed_epoch(epoch)
        update_schedules(self.raw_model, min(1.0, (epoch + 1) / cfg["epochs"]))
        self.model.train()
        amp = self.amp
        dev = self.device
        loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
        correct = torch.zeros((), dtype=torch.float64, device=dev)
        seen = 0
        it = self.train_loader
        bar = None
        if self.progress and self.dist.is_main:
            from tqdm import tqdm

            it = bar = tqdm(self.train_loader, desc=f"epoch {epoch + 1}/{cfg['epochs']}", leave=False,
                            dynamic_ncols=True)
        for x, target in it:
            x, target = _to(x, dev), _to(target, dev)
            labels = self.fwd.labels(target)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                out = self.fwd(self.model, x, target)
                loss = self.loss_fn(out, labels, self.raw_model)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{self.out}: non-finite training loss at epoch {epoch}")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            if self.dab_layers:
                self._dab_project()
            n = int(labels.shape[0])
            loss_sum += loss.detach().double() * n
            with torch.no_grad():
                correct += (out.detach().argmax(-1) == labels).double().mean() * n
            seen += n
            if bar is not None:
                bar.set_postfix(loss=f"{loss.item():.4f}")
        if bar is not None:
            bar.close()
        stats = torch.stack([loss_sum, correct, torch.tensor(float(seen), dtype=torch.float64, device=dev)])
        if self.dist.distributed:
            torch.distributed.all_reduce(stats)
        total = max(float(stats[2]), 1.0)
        return {"train_loss": float(stats[0]) / total, "train_acc": 100.0 * float(stats[1]) / total}

    def _checkpoint(self, epoch: int, metrics: dict) -> dict[str, Any]:
        return {
            "format": 1,
            "model_config": copy.deepcopy(self.raw_model.onebit_config),
            "state_dict": {k: v.detach().cpu() for k, v in self.raw_model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": epoch,
            "rng": rng_state(),
            "config": self.cfg,
            "metrics": metrics,
            "best": self.best,
            "seed": self.cfg["seed"],
            "code_version": self.code_version,
            "task": self.task,
        }

    def fit(self) -> RunResult:
        """Set up (DDP if launched by torchrun), train, evaluate and checkpoint every epoch; the ``RunResult``."""
        dist = init_distributed()
        try:
            self._setup(dist)
            result = self._fit()
            # every rank leaves together: a gloo peer torn down while another rank still finishes (rank 0
            # writes best.ckpt) aborts that rank's process ("terminate called without an active exception")
            barrier(dist)
            return result
        finally:
            if getattr(self, "logger", None) is not None:
                self.logger.close()
            cleanup(dist)

    def _fit(self) -> RunResult:
        cfg, dist = self.cfg, self.dist
        epochs = cfg["epochs"]
        history: list[dict] = []
        if self.start_epoch >= epochs:
            log(f"checkpoint is at epoch {self.start_epoch}, nothing left to train (epochs={epochs})", dist.is_main)
        final: dict[str, float] = dict((self.ckpt or {}).get("metrics") or {})
        kill_after = os.environ.get(KILL_ENV)
        diag_batch = None
        for epoch in range(self.start_epoch, epochs):
            t0 = time.perf_counter()
            lr = self.optimizer.param_groups[0]["lr"]
            row: dict[str, Any] = {"epoch": epoch, "lr": lr}
            row.update(self._train_epoch(epoch))
            self.scheduler.step()
            if (epoch + 1) % cfg["eval"]["every"] == 0 or epoch + 1 == epochs:
                m = evaluate(self.model, self.eval_loader, self.task, self.num_classes, domain=self.domain,
                             loss_fn=self.loss_fn, device=self.device,
                             amp=self.amp and cfg["eval"]["amp"],
                             category_parts=self.category_parts, num_categories=self.num_categories,
                             progress=False)
                final = m
                row.update(m)
                if self.select not in m:
                    raise ConfigError(f"eval.select={self.select!r} is not a metric of task {self.task!r} "
                                      f"(available: {sorted(m)})")
                if m[self.select] > self.best["value"]:
                    self.best = {"metric": self.select, "value": m[self.select], "epoch": epoch, "metrics": m}
                    is_best = True
                else:
                    is_best = False
            else:
                is_best = False
            row["time_s"] = time.perf_counter() - t0
            if self.recorder is not None:
                if diag_batch is None:
                    # the eval loader is not shuffled, so probing it consumes no training randomness;
                    # targets go along because part segmentation models also need the category
                    inputs, targets = next(iter(self.eval_loader))
                    inputs = _to(inputs, self.device)
                    if inputs.dim() == self.fwd.base_dims + 1:  # multi-crop eval: probe crop 0
                        inputs = inputs[:, 0]
                    diag_batch = (inputs, _to(targets, self.device))
                try:
                    self.recorder.on_epoch_end(epoch, self.raw_model, diag_batch)
                except Exception as e:
                    log(f"diagnostics disabled after an error: {type(e).__name__}: {e}")
                    self.recorder = None
                self.raw_model.train()
            if dist.is_main:
                ckpt = self._checkpoint(epoch, row)
                save_checkpoint(ckpt, self.out / "last.ckpt")
                if is_best:
                    save_checkpoint(ckpt, self.out / "best.ckpt")
                self.logger.epoch(row)
                if self.progress:
                    shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
                    log(f"{shown}")
            history.append(row)
            barrier(dist)
            if kill_after is not None and int(kill_after) == epoch:
                os.kill(os.getpid(), signal.SIGKILL)
        best_ckpt = self.out / "best.ckpt"
        if dist.is_main and not best_ckpt.exists() and (self.out / "last.ckpt").exists():
            save_checkpoint(load_checkpoint(self.out / "last.ckpt"), best_ckpt)
        return RunResult(
            out_dir=self.out, final=final, best=dict(self.best.get("metrics") or {}),
            best_epoch=int(self.best.get("epoch", -1)), select=self.select,
            last_ckpt=self.out / "last.ckpt", best_ckpt=best_ckpt, history=history, config=self.cfg,
            amp=self.amp,
        )


def run(config: dict, out_dir: str | Path, resume: bool = False, progress: bool = True) -> RunResult:
    """Train ``config`` (a dict in the docs/training.md schema) into ``out_dir``."""
    return Trainer(config, out_dir, resume=resume, progress=progress).fit()
