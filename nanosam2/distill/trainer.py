"""The distillation loop: a frozen SAM2.1 teacher, a student image encoder, SA-1B crops.

One function, :func:`train`, serves plain distillation, QAT (``config.qat``), one process or
``torchrun`` DDP. Everything that decides the numbers (data order, crops, optimizer, schedule,
scaler, RNG) is either derived from ``(seed, epoch, index)`` or stored in ``last.pth``, so
``resume`` continues bit for bit, also from a mid-epoch checkpoint (``save_every``).

Files in ``output_dir``: ``last.pth`` (full training state, every epoch and every
``save_every`` steps), ``best.pth`` (the student alone, best COCO val mIoU, or lowest epoch loss
without val), ``train_log.csv``, ``coco_val_epochN.json``, ``tensorboard/``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from nanosam2.build import build_nanosam2, build_teacher, student_config_name
from nanosam2.checkpoint import read_checkpoint, save_checkpoint
from nanosam2.data.dataset import EpochSampler, SA1BImages, collate_skipping
from nanosam2.data.sa1b_files import find_images, select_subset
from nanosam2.distill.distributed import (DistContext, average_buffers, check_ranks_in_sync, close_distributed,
                                           init_distributed)
from nanosam2.distill.loss import LOSSES, feature_loss
from nanosam2.distill.schedule import warmup_cosine
from nanosam2.distill.train_log import TrainLog
from nanosam2.errors import NanoSam2Error
from nanosam2.utils.atomic import check_writable_dir
from nanosam2.utils.lazy_import import require

logger = logging.getLogger(__name__)

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}
# Settings that fix the data order and step accounting: a resumed run must keep them.
RESUME_INVARIANTS = ("batch_size", "grad_accum", "seed", "num_images", "image_size", "world_size", "qat")


DEFAULT_BACKBONE = "resnet18"


@dataclass
class TrainConfig:
    images: str
    output_dir: str
    backbone: str | None = None  # None: the starting checkpoint's, else resnet18; given: checked against it
    teacher_config: str = "sam2.1_hiera_s"
    teacher_checkpoint: str | None = None
    init_checkpoint: str | None = None  # a student checkpoint to start from (QAT: the FP32 result)
    pretrained_backbone: bool = False
    chunks: list[str] | None = None
    num_images: int | None = None
    image_size: int = 1024
    batch_size: int = 16
    grad_accum: int = 1
    epochs: int = 10
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup_steps: int | None = None  # default: 5 % of all steps
    min_lr_ratio: float = 0.01
    clip_grad: float | None = None
    loss: str = "huber"
    amp: str = "auto"
    num_workers: int = 4
    seed: int = 0
    save_every: int = 0
    stop_after_steps: int | None = None
    resume: str | None = None
    coco_root: str | None = None
    coco_ann: str | None = None
    val_limit: int | None = 200
    val_every: int = 1
    tensorboard: bool = False
    device: str | None = None
    qat: bool = False
    calib_batches: int = 16
    best_name: str = "best.pth"
    progress: bool = True
    overwrite: bool = False  # start a new run in a folder that holds an earlier one
    world_size: int = field(default=1, init=False)


def throughput(images_per_s: float) -> str:
    """``12.34 images/s``, or why there is no figure (the first step, which pays for warm-up, is not timed)."""
    if math.isnan(images_per_s):
        return "images/s not measured (only the first step ran, and it pays for warm-up)"
    return f"{images_per_s:.2f} images/s"


@dataclass
class TrainResult:
    last: Path
    best: Path | None
    global_step: int
    losses: list[float]
    images_per_s: float
    weights_sha256: str
    stopped_early: bool


def resolve_amp(amp: str, device: torch.device) -> str:
    if amp == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    if amp not in AMP_DTYPES:
        raise NanoSam2Error(f"unknown --amp {amp!r}; choose auto, bf16, fp16 or fp32")
    return amp


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check_config(cfg: TrainConfig) -> None:
    """Every number and name, before anything is loaded or written."""
    if cfg.loss not in LOSSES:
        raise NanoSam2Error(f"unknown --loss {cfg.loss!r}; choose {', '.join(LOSSES)}")
    for name in ("batch_size", "grad_accum", "epochs", "image_size", "val_every", "calib_batches"):
        if getattr(cfg, name) < 1:
            raise NanoSam2Error(f"{_flag(name)} must be at least 1")
    for name in ("num_images", "stop_after_steps"):
        if getattr(cfg, name) is not None and getattr(cfg, name) < 1:
            raise NanoSam2Error(f"{_flag(name)} must be at least 1")
    for name in ("num_workers", "save_every", "warmup_steps", "val_limit"):
        if getattr(cfg, name) is not None and getattr(cfg, name) < 0:
            raise NanoSam2Error(f"{_flag(name)} must not be negative")
    if not (math.isfinite(cfg.lr) and cfg.lr > 0):
        raise NanoSam2Error(f"--lr must be a finite number above 0, got {cfg.lr}")
    if not (math.isfinite(cfg.weight_decay) and cfg.weight_decay >= 0):
        raise NanoSam2Error(f"--weight-decay must be a finite number >= 0, got {cfg.weight_decay}")
    if not (math.isfinite(cfg.min_lr_ratio) and 0 <= cfg.min_lr_ratio <= 1):
        raise NanoSam2Error(f"--min-lr-ratio must be in [0, 1], got {cfg.min_lr_ratio}")
    if cfg.clip_grad is not None and not (math.isfinite(cfg.clip_grad) and cfg.clip_grad > 0):
        raise NanoSam2Error(f"--clip-grad must be a finite number above 0, got {cfg.clip_grad}")
    if cfg.image_size % 32:
        raise NanoSam2Error(f"--image-size must be a multiple of 32 (the encoders' stride), got {cfg.image_size}")
    if bool(cfg.coco_root) != bool(cfg.coco_ann):
        raise NanoSam2Error("COCO validation needs both --coco-root and --coco-ann")
    if cfg.qat and not (cfg.init_checkpoint or cfg.resume):
        raise NanoSam2Error("QAT starts from a trained FP32 student: pass --checkpoint fp32.pth")


RUN_FILES = ("last.pth", "train_log.csv")


def _check_previous_run(cfg: TrainConfig) -> None:
    """A new run never overwrites an earlier one: continue it with --resume, or say --overwrite."""
    out = Path(cfg.output_dir)
    found = [name for name in (*RUN_FILES, cfg.best_name) if (out / name).is_file()]
    resuming = cfg.resume not in (None, "auto") or (cfg.resume == "auto" and (out / "last.pth").is_file())
    if found and not resuming and not cfg.overwrite:
        raise NanoSam2Error(f"{out} holds an earlier run ({', '.join(found)}): continue it with --resume, replace it "
                            "with --overwrite, or choose another --output-dir")
    if cfg.init_checkpoint and (out / cfg.best_name).is_file() and \
            Path(cfg.init_checkpoint).resolve() == (out / cfg.best_name).resolve():
        raise NanoSam2Error(f"the starting checkpoint {cfg.init_checkpoint} would be overwritten by this run's "
                            f"{cfg.best_name}: choose another --output-dir")


class Distiller:
    """State of one training run (see the module docstring)."""

    def __init__(self, cfg: TrainConfig, ctx: DistContext) -> None:
        _check_config(cfg)
        _check_previous_run(cfg)
        self.cfg, self.ctx, self.device = cfg, ctx, ctx.device
        cfg.world_size = ctx.world_size
        self.out = check_writable_dir(cfg.output_dir) if ctx.is_main else Path(cfg.output_dir)
        self.amp = resolve_amp(cfg.amp, self.device)
        torch.manual_seed(cfg.seed)
        self.resume_path = self._resume_path()
        self.resume_state = read_checkpoint(self.resume_path) if self.resume_path else None

        files = select_subset(find_images(cfg.images, cfg.chunks), cfg.num_images, cfg.seed)
        self.dataset = SA1BImages(files, cfg.image_size)
        per_rank = math.ceil(len(self.dataset) / ctx.world_size)
        self.steps_per_epoch = per_rank // cfg.batch_size // cfg.grad_accum
        if self.steps_per_epoch == 0:
            raise NanoSam2Error(f"{len(files)} images are too few for batch {cfg.batch_size} x accumulation "
                                f"{cfg.grad_accum} x {ctx.world_size} process(es)")
        self.total_steps = cfg.epochs * self.steps_per_epoch

        self.teacher = build_teacher(cfg.teacher_config, cfg.teacher_checkpoint, device=str(self.device),
                                     apply_postprocessing=False, mode="eval").requires_grad_(False)
        self.student, self.quantization = self._build_student()
        self.student.requires_grad_(False)
        self.encoder: nn.Module = self.student.image_encoder.requires_grad_(True)  # type: ignore[union-attr]
        self.set_train_mode()
        self.trained: Any = self.encoder
        if ctx.enabled:
            self.trained = nn.parallel.DistributedDataParallel(
                self.encoder, device_ids=[self.device.index] if self.device.type == "cuda" else None)

        decay = [p for p in self.encoder.parameters() if p.ndim > 1]
        no_decay = [p for p in self.encoder.parameters() if p.ndim <= 1]
        self.optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                            {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
        warmup = cfg.warmup_steps if cfg.warmup_steps is not None else max(1, self.total_steps // 20)
        self.scheduler = warmup_cosine(self.optimizer, warmup, self.total_steps, cfg.min_lr_ratio)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp == "fp16")
        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.best_metric: float | None = None
        self.epoch_losses: list[float] = []
        if self.resume_state is not None:
            self._load_training_state(self.resume_state, str(self.resume_path))
        self.log = TrainLog(self.out, self.global_step if self.resume_state else None, cfg.tensorboard) \
            if ctx.is_main else None
        logger.info("distilling %s -> %s: %d images, %d steps/epoch x %d epochs, batch %d x %d accum x %d ranks, "
                    "amp %s, %s", cfg.teacher_config, self.spec_name, len(self.dataset), self.steps_per_epoch,
                    cfg.epochs, cfg.batch_size, cfg.grad_accum, ctx.world_size, self.amp, self.device)

    # -- set-up ---------------------------------------------------------------------------
    def _resume_path(self) -> Path | None:
        if not self.cfg.resume:
            return None
        path = Path(self.out) / "last.pth" if self.cfg.resume == "auto" else Path(self.cfg.resume)
        if not path.is_file():
            if self.cfg.resume == "auto":
                logger.info("no %s yet: starting a new run", path)
                return None
            raise NanoSam2Error(f"--resume: no such checkpoint {path}")
        return path

    def _build_student(self) -> tuple[Any, dict[str, Any] | None]:
        cfg, dev = self.cfg, str(self.device)
        if self.resume_state is not None:  # structure (incl. quantizers) and weights from last.pth
            model = build_nanosam2(checkpoint=self.resume_path, device=dev, mode="train")
            return model, self.resume_state.get("quantization")
        if cfg.init_checkpoint:  # ours, or the seed's (urbste/nanosam2: trunk names mapped when it loads)
            config = student_config_name(cfg.backbone) if cfg.backbone else None
            model = build_nanosam2(config, checkpoint=cfg.init_checkpoint, device=dev, mode="train")
        else:
            backbone = cfg.backbone or DEFAULT_BACKBONE
            model = build_nanosam2(student_config_name(backbone), teacher_checkpoint=cfg.teacher_checkpoint,
                                   device=dev, mode="train")
            if cfg.pretrained_backbone:
                from nanosam2.modeling.backbones import create_backbone

                model.image_encoder.trunk.body.load_state_dict(create_backbone(backbone, pretrained=True).state_dict())
                logger.info("trunk initialised from %s ImageNet weights", backbone)
        if not cfg.qat:
            return model, None
        from nanosam2.qat.modelopt_int8 import quantize_image_encoder

        calib = EpochSampler(len(self.dataset), self.cfg.seed + 1, 0)  # same images on every rank
        loader = DataLoader(self.dataset, batch_size=cfg.batch_size, sampler=calib, collate_fn=collate_skipping,
                            num_workers=min(cfg.num_workers, 2), generator=torch.Generator())
        batches = []
        for batch, _ in loader:
            if batch is not None:
                batches.append(batch.to(self.device))
            if len(batches) >= cfg.calib_batches:
                break
        if not batches:
            raise NanoSam2Error(f"no readable image in {cfg.images} to calibrate the INT8 quantizers "
                                f"({len(self.dataset)} files, all unreadable)")
        state = quantize_image_encoder(model, batches, batches[0][:1])
        return model, state

    @property
    def spec_name(self) -> str:
        return self.student.nanosam2_spec["name"]

    def set_train_mode(self) -> None:
        """Student encoder trains; heads stay in eval; under QAT BatchNorms keep running stats."""
        self.student.eval()
        self.encoder.train()
        if self.cfg.qat:
            from nanosam2.qat.batchnorm import freeze_batchnorms

            freeze_batchnorms(self.encoder)

    def _load_training_state(self, state: dict[str, Any], source: str) -> None:
        saved = state.get("train_config", {})
        changed = [k for k in RESUME_INVARIANTS if k in saved and saved[k] != getattr(self.cfg, k)]
        if changed:
            raise NanoSam2Error(f"{source} was trained with different " + ", ".join(
                f"{k} ({saved[k]} -> {getattr(self.cfg, k)})" for k in changed) + "; resume needs the same values")
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step_in_epoch = int(state["epoch"]), int(state["step_in_epoch"])
        self.global_step, self.best_metric = int(state["global_step"]), state.get("best_metric")
        self.epoch_losses = [float(v) for v in state.get("epoch_losses", [])]
        torch.set_rng_state(state["rng"]["torch"])
        if self.device.type == "cuda" and state["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
        logger.info("resumed %s at epoch %d, step %d/%d (global step %d)", source, self.epoch + 1, self.step_in_epoch,
                    self.steps_per_epoch, self.global_step)

    # -- checkpoints ------------------------------------------------------------------------
    def _extra(self) -> dict[str, Any]:
        return {"quantization": self.quantization} if self.quantization else {}

    def save_last(self) -> Path:
        path = self.out / "last.pth"
        if self.ctx.is_main:
            train_config = {k: v for k, v in dataclasses.asdict(self.cfg).items()}
            save_checkpoint(path, self.student, config_spec=self.student.nanosam2_spec, epoch=self.epoch,
                            step_in_epoch=self.step_in_epoch, global_step=self.global_step,
                            best_metric=self.best_metric, epoch_losses=list(self.epoch_losses),
                            optimizer=self.optimizer.state_dict(),
                            scheduler=self.scheduler.state_dict(), scaler=self.scaler.state_dict(),
                            rng={"torch": torch.get_rng_state(),
                                 "cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None},
                            train_config=train_config, **self._extra())
        self.ctx.barrier()
        return path

    def save_best(self, metrics: dict[str, float]) -> Path:
        path = self.out / self.cfg.best_name
        if self.ctx.is_main:
            save_checkpoint(path, self.student, config_spec=self.student.nanosam2_spec, epoch=self.epoch,
                            global_step=self.global_step, metrics=metrics, teacher=self.cfg.teacher_config,
                            **self._extra())
        return path

    # -- the loop ---------------------------------------------------------------------------
    def _loader(self) -> DataLoader:
        cfg = self.cfg
        start = self.step_in_epoch * cfg.grad_accum * cfg.batch_size
        sampler = EpochSampler(len(self.dataset), cfg.seed, self.epoch, self.ctx.rank, self.ctx.world_size, start)
        return DataLoader(self.dataset, batch_size=cfg.batch_size, sampler=sampler, collate_fn=collate_skipping,
                          num_workers=cfg.num_workers, drop_last=True, pin_memory=self.device.type == "cuda",
                          generator=torch.Generator())  # keeps the global RNG out of data loading

    def _micro_step(self, batch: torch.Tensor | None, last_micro: bool) -> tuple[float, list[float]]:
        """Forward + backward of one micro-batch; returns its (unscaled) loss and level losses."""
        dtype = AMP_DTYPES[self.amp]
        sync = contextlib.nullcontext() if (last_micro or not self.ctx.enabled) else self.trained.no_sync()
        with sync:
            if batch is None:  # every image of the batch was unreadable: a zero step keeps DDP in step
                zero = torch.stack([p.sum() for p in self.encoder.parameters()]).sum() * 0.0
                zero.backward()
                return 0.0, [0.0, 0.0, 0.0]
            batch = batch.to(self.device, non_blocking=True)
            with torch.autocast(self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                with torch.no_grad():
                    target = self.teacher.image_encoder(batch)["backbone_fpn"]
                output = self.trained(batch)["backbone_fpn"]
            loss, levels = feature_loss(output, target, self.cfg.loss)
            self.scaler.scale(loss / self.cfg.grad_accum).backward()
        return float(loss.detach()), [float(v.detach()) for v in levels]

    def _optimizer_step(self) -> None:
        if self.cfg.clip_grad:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.encoder.parameters(), self.cfg.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()

    def _validate(self) -> dict[str, float] | None:
        cfg = self.cfg
        if not cfg.coco_root or ((self.epoch + 1) % cfg.val_every and self.epoch + 1 != cfg.epochs):
            return None
        metrics = None
        if self.ctx.is_main:
            from nanosam2.distill.validation import coco_miou

            dtype = "bf16" if self.amp == "bf16" else "fp32"
            assert cfg.coco_ann is not None
            metrics = coco_miou(self.student, cfg.coco_root, cfg.coco_ann, self.out / f"coco_val_epoch{self.epoch + 1}.json",
                                cfg.val_limit, str(self.device), dtype)
            self.set_train_mode()
        self.ctx.barrier()
        return metrics

    def run(self) -> TrainResult:
        cfg, losses = self.cfg, []
        seen, busy, stopped, ran = 0, 0.0, False, 0
        best_path = self.out / cfg.best_name if (self.out / cfg.best_name).is_file() else None
        tqdm = require("tqdm", "progress bars").tqdm
        while self.epoch < cfg.epochs and not stopped:
            epoch_losses = self.epoch_losses
            epoch_images = 0
            iterator = iter(self._loader())
            bar = tqdm(total=self.steps_per_epoch, initial=self.step_in_epoch, unit="step",
                       desc=f"epoch {self.epoch + 1}/{cfg.epochs}", disable=not (cfg.progress and self.ctx.is_main))
            while self.step_in_epoch < self.steps_per_epoch:
                start = time.perf_counter()
                lr = self.optimizer.param_groups[0]["lr"]
                step_loss, step_levels, images, skipped = 0.0, [0.0, 0.0, 0.0], 0, 0
                for micro in range(cfg.grad_accum):
                    batch, bad = next(iterator)
                    loss, levels = self._micro_step(batch, micro == cfg.grad_accum - 1)
                    step_loss += loss / cfg.grad_accum
                    step_levels = [a + b / cfg.grad_accum for a, b in zip(step_levels, levels)]
                    images += 0 if batch is None else len(batch)
                    skipped += bad
                epoch_images += images
                self._optimizer_step()
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                elapsed = time.perf_counter() - start
                self.step_in_epoch += 1
                self.global_step += 1
                ran += 1
                if ran > 1:  # the first step pays for warm-up (allocations, worker start)
                    seen += images * self.ctx.world_size
                    busy += elapsed
                step_loss = self.ctx.mean(step_loss)
                losses.append(step_loss)
                epoch_losses.append(step_loss)
                if self.log is not None:
                    self.log.write(step=self.global_step, epoch=self.epoch + 1, lr=lr, loss=step_loss,
                                   loss_level0=step_levels[0], loss_level1=step_levels[1], loss_level2=step_levels[2],
                                   images=images * self.ctx.world_size, skipped=skipped,
                                   images_per_s=images * self.ctx.world_size / elapsed)
                bar.set_postfix(loss=f"{step_loss:.4g}", lr=f"{lr:.2e}")
                bar.update()
                if not math.isfinite(step_loss):
                    raise NanoSam2Error(f"loss became {step_loss} at step {self.global_step}; lower --lr or use "
                                        "--amp fp32 / --clip-grad")
                if cfg.stop_after_steps and ran >= cfg.stop_after_steps:
                    stopped = True
                    break
                if cfg.save_every and self.global_step % cfg.save_every == 0 and self.step_in_epoch < self.steps_per_epoch:
                    self.save_last()
            bar.close()
            if self.ctx.sum(epoch_images) == 0 and not stopped:
                raise NanoSam2Error(f"epoch {self.epoch + 1}: every image was unreadable ({len(self.dataset)} files in "
                                    f"{cfg.images}); nothing was trained and no checkpoint was written")
            average_buffers(self.ctx, self.encoder)
            if stopped:
                break
            metrics = self._validate()
            value = metrics["all"] if metrics else -sum(epoch_losses) / len(epoch_losses)
            improved = self.best_metric is None or value > self.best_metric
            if improved:
                self.best_metric = value
                best_path = self.save_best(metrics or {"train_loss": -value})
            if metrics and self.log is not None:
                self.log.write(step=self.global_step, epoch=self.epoch + 1, **{f"val_miou_{k}": v for k, v in metrics.items()})
            logger.info("epoch %d: mean loss %.5g%s%s", self.epoch + 1, sum(epoch_losses) / len(epoch_losses),
                        f", COCO mIoU {metrics['all']:.4f}" if metrics else "", " (best)" if improved else "")
            self.epoch, self.step_in_epoch = self.epoch + 1, 0
            self.epoch_losses = []
            self.save_last()
        last = self.save_last() if stopped else self.out / "last.pth"
        digest = check_ranks_in_sync(self.ctx, self.encoder)
        if self.log is not None:
            self.log.close()
        rate = seen / busy if busy > 0 else float("nan")
        logger.info("%s after %d steps (%s); weights sha256 %s", "stopped" if stopped else "finished",
                    self.global_step, throughput(rate), digest[:16])
        return TrainResult(last, best_path, self.global_step, losses, rate, digest, stopped)


def train(cfg: TrainConfig) -> TrainResult:
    """Run (or resume) a distillation; joins the torchrun process group when launched by it."""
    ctx = init_distributed(cfg.device)
    try:
        return Distiller(cfg, ctx).run()
    finally:
        close_distributed(ctx)
