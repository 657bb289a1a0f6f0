"""Offline semi-supervised adversarial training (OAST stage 1 and the DAVIS finetune).

Labeled frames are learned with BCE + IoU. While adversarial training is on
(``epoch >= start_adv`` and ``lambda_adv > 0``) each step also draws an unlabeled batch; the
generator is pushed to make unlabeled-frame features look "labeled" to a feature
discriminator, which is then updated on detached labeled (real) vs unlabeled (fake) features.
Labeled and unlabeled frames go through the network in two calls inside one module forward
(``PairedForward``): BatchNorm batches stay single-domain, and DDP still sees one forward
and one backward per step.
"""
from __future__ import annotations

import argparse
import logging
import re
import time
import warnings
from itertools import islice
from typing import Iterator

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler

from datasets import FrameDataset, TrainAugment, collate_frames
from engine.loop import (build_optimizer, encoder_param_groups, freeze_batchnorm, grad_scaler, optimizer_step,
                         run_epoch, unwrap)
from engine.validate import validate
from models import build_feature_discriminator, build_model
from models.losses import adversarial_loss, batch_iou, seg_loss
from utils.checkpoint import load_checkpoint, load_model_weights, save_checkpoint
from utils.distributed import DistInfo, barrier, convert_sync_bn
from utils.log import TensorBoard, start_run
from utils.misc import autocast, seed_everything, worker_init_fn

_log = logging.getLogger(__name__)


def add_offline_args(p: argparse.ArgumentParser) -> None:
    """Options of the offline stages; defaults are the paper's settings."""
    g = p.add_argument_group("offline training (paper defaults)")
    g.add_argument("--epochs", type=int, default=30, help="training epochs (stage 1: 30, DAVIS finetune: 25)")
    g.add_argument("--batch_size", type=int, default=2, help="labeled (and unlabeled) frames per GPU/process")
    g.add_argument("--lr", type=float, default=1e-4, help="AdamW learning rate of the segmentation network")
    g.add_argument("--lr_d", type=float, default=1e-4, help="AdamW learning rate of the feature discriminator")
    g.add_argument("--weight_decay", type=float, default=1e-2, help="AdamW weight decay (both networks)")
    g.add_argument("--lr_step", type=int, default=10, help="decay both learning rates every N epochs")
    g.add_argument("--lr_gamma", type=float, default=0.1, help="learning-rate decay factor")
    g.add_argument("--encoder_lr_mult", type=float, default=1.0,
                   help="learning rate of both encoders relative to --lr (ImageNet-initialised encoders may want < 1)")
    g.add_argument("--freeze_encoder_bn", action="store_true",
                   help="keep the encoders' BatchNorm statistics as loaded (small batches)")
    g.add_argument("--lr_schedule", default="step", choices=["step", "cosine"],
                   help="step: x lr_gamma every lr_step epochs (paper); cosine: to 0 over --epochs, per step")
    g.add_argument("--labeled_datasets", nargs="+", default=["YouTubeVOS-2018", "DAVIS-2016"],
                   help="labeled sets (train split)")
    g.add_argument("--labeled_split", default="train", help="split folder of the labeled sets")
    g.add_argument("--unlabeled_datasets", nargs="+", default=["Youtube-objects"],
                   help="unlabeled sets (labels never read)")
    g.add_argument("--unlabeled_split", default="val", help="split folder of the unlabeled sets")
    g.add_argument("--youtube_stride", type=int, default=10, help="keep every N-th annotated YouTube-VOS frame")
    g.add_argument("--lambda_adv", type=float, default=1e-4, help="weight of the generator's adversarial loss")
    g.add_argument("--start_adv", type=int, default=0, help="first epoch (0-based) with adversarial training")
    g.add_argument("--unlabeled_bn", default="separate", choices=["separate", "joint"],
                   help="separate: labeled and unlabeled frames in separate BatchNorm batches; joint: one "
                        "concatenated batch (measured much worse, benchmarks/ablation_offline.py)")
    g.add_argument("--d_width", type=int, default=64, help="feature discriminator width")
    g.add_argument("--clip_grad", type=float, default=None, help="clip gradient norm to this value (off if unset)")
    g.add_argument("--scale_range", type=float, nargs=2, default=(0.8, 1.25), help="random scale range of crops")
    g.add_argument("--max_rotation", type=float, default=10.0, help="random rotation range in degrees (+/-)")
    g.add_argument("--max_steps_per_epoch", type=int, default=None, help="cap steps per epoch (quick runs)")
    v = p.add_argument_group("validation and checkpoints")
    v.add_argument("--val_datasets", nargs="+", default=["DAVIS-2016"], help="sets scored with J after each epoch")
    v.add_argument("--val_split", default="val", help="split used for validation and best-checkpoint selection")
    v.add_argument("--val_every", type=int, default=1, help="validate every N epochs (0: never)")
    v.add_argument("--output_dir", default="runs/stage1", help="run folder: args, log, TensorBoard, checkpoints")
    v.add_argument("--resume", default=None,
                   help="checkpoint to resume exactly, or 'auto' (<output_dir>/checkpoint_last.pth if any)")
    v.add_argument("--finetune", default=None, help="initialise the network's weights only from this checkpoint")
    v.add_argument("--sync-bn", "--sync_bn", dest="sync_bn", action="store_true",
                   help="SyncBatchNorm across GPUs (CUDA only; ignored with a warning elsewhere)")
    v.add_argument("--log_every", type=int, default=20, help="TensorBoard scalars every N steps")
    v.add_argument("--no_tensorboard", action="store_true", help="disable TensorBoard logging")


class PairedForward(nn.Module):
    """The network applied to a labeled and an optional unlabeled batch in one forward.

    ``joint=False`` calls the network twice, so every BatchNorm batch holds one kind of
    frame; ``joint=True`` concatenates both batches into one call. Either way this is a
    single module forward, so DDP sees one forward per backward: autograd sums a
    parameter's two gradient contributions before DDP's hook on it fires.
    """

    def __init__(self, net: nn.Module, joint: bool = False):
        super().__init__()
        self.net, self.joint = net, joint

    def forward(self, image: torch.Tensor, flow: torch.Tensor, u_image: torch.Tensor | None = None,
                u_flow: torch.Tensor | None = None) -> tuple[dict, dict | None]:
        if u_image is None:
            return self.net(image, flow), None
        if not self.joint:
            return self.net(image, flow), self.net(u_image, u_flow)
        b = image.shape[0]
        out = self.net(torch.cat([image, u_image]), torch.cat([flow, u_flow]))
        return {k: v[:b] for k, v in out.items()}, {k: v[b:] for k, v in out.items()}


class OfflineTrainer:
    """Builds model, discriminator, data, optimizers from ``args``; ``fit()`` trains."""

    def __init__(self, args: argparse.Namespace, info: DistInfo | None = None):
        self.args = args
        self.info, self.run_dir = start_run(args, info)
        seed_everything(args.seed, self.info.rank)
        dev = self.info.device
        model = build_model(args.model_scale, args.backbone, args.pretrained, arch=args.arch)
        self.cfg = model.config
        disc = build_feature_discriminator(model, args.d_width)
        if args.finetune:
            load_model_weights(model, args.finetune, self.cfg)
            _log.info("initialised the network from %s (weights only)", args.finetune)
        if args.sync_bn:
            model = convert_sync_bn(model, self.info)
        self.net, disc = model.to(dev), disc.to(dev)  # the bare network: saved, validated
        model = PairedForward(self.net, joint=args.unlabeled_bn == "joint")
        if self.info.distributed:
            ids = [dev.index] if dev.type == "cuda" else None
            model, disc = DDP(model, device_ids=ids), DDP(disc, device_ids=ids)
        self.model, self.disc = model, disc  # what trains: PairedForward, DDP-wrapped when distributed
        # One parameter group unless the encoders get their own rate (keeps old runs resumable).
        params = (self.net.parameters() if args.encoder_lr_mult == 1
                  else encoder_param_groups(self.net, args.lr, args.encoder_lr_mult))
        self.opt_g = build_optimizer(params, args.lr, args.weight_decay)
        self.opt_d = build_optimizer(disc.parameters(), args.lr_d, args.weight_decay)
        self._build_data()
        self.sched_g, self.sched_d = self._scheduler(self.opt_g), self._scheduler(self.opt_d)
        self.scaler_g = grad_scaler(dev, args.amp, args.amp_dtype)
        self.scaler_d = grad_scaler(dev, args.amp, args.amp_dtype)
        self.start_epoch, self.global_step, self.best_j = 0, 0, -1.0
        self.tb = TensorBoard(self.run_dir / "tb", enabled=self.info.is_main and not args.no_tensorboard)
        if args.resume:
            self._resume(args.resume)

    def _scheduler(self, opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
        """The paper's step decay (stepped per epoch), or a per-step cosine for short runs."""
        a = self.args
        if a.lr_schedule == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(a.epochs * self.steps_per_epoch, 1))
        return torch.optim.lr_scheduler.StepLR(opt, a.lr_step, a.lr_gamma)

    @property
    def steps_per_epoch(self) -> int:
        n = len(self.loader)
        return n if self.args.max_steps_per_epoch is None else min(n, self.args.max_steps_per_epoch)

    # data ------------------------------------------------------------------------------
    def _build_data(self) -> None:
        a, info = self.args, self.info
        aug = TrainAugment(tuple(a.size), tuple(a.scale_range), a.max_rotation)
        self.labeled = FrameDataset(a.data_dir, a.labeled_datasets, "labeled", a.labeled_split, a.size,
                                    a.youtube_stride, aug, seed=a.seed)
        self.sampler = DistributedSampler(self.labeled, info.world_size, info.rank, shuffle=True, seed=a.seed,
                                          drop_last=True)
        self.loader = DataLoader(self.labeled, a.batch_size, sampler=self.sampler, num_workers=a.workers,
                                 collate_fn=collate_frames, drop_last=True, worker_init_fn=worker_init_fn,
                                 pin_memory=info.device.type == "cuda", persistent_workers=False)
        if len(self.loader) == 0:
            raise ValueError(f"{len(self.labeled)} labeled frames is less than one batch of {a.batch_size} per process")
        self.unlabeled = None
        if a.lambda_adv > 0 and a.start_adv < a.epochs:
            self.unlabeled = FrameDataset(a.data_dir, a.unlabeled_datasets, "unlabeled", a.unlabeled_split, a.size,
                                          augment=aug, seed=a.seed + 1)
        self.val = None
        if a.val_every > 0 and a.val_datasets:
            self.val = FrameDataset(a.data_dir, a.val_datasets, "test", a.val_split, a.size, with_labels=True)

    def _unlabeled_batches(self, epoch: int) -> Iterator[dict]:
        """Endless unlabeled batches, reshuffled on each pass, deterministic given the epoch."""
        a, info = self.args, self.info
        sampler = DistributedSampler(self.unlabeled, info.world_size, info.rank, shuffle=True, seed=a.seed + 1,
                                     drop_last=True)
        loader = DataLoader(self.unlabeled, a.batch_size, sampler=sampler, num_workers=a.workers,
                            collate_fn=collate_frames, drop_last=True, worker_init_fn=worker_init_fn)
        for cycle in range(10**9):
            sampler.set_epoch(epoch * 1000 + cycle)
            self.unlabeled.set_epoch(epoch * 1000 + cycle)
            yield from loader

    # one step ----------------------------------------------------------------------------
    def step(self, batch: dict, unlabeled: Iterator[dict] | None) -> dict[str, torch.Tensor]:
        a, dev = self.args, self.info.device
        image, flow, mask = batch["image"].to(dev), batch["flow"].to(dev), batch["mask"].to(dev)
        b = image.shape[0]
        u_image = u_flow = None
        if unlabeled is not None:
            ub = next(unlabeled)
            u_image, u_flow = ub["image"].to(dev), ub["flow"].to(dev)
        with autocast(dev, a.amp, a.amp_dtype):
            out, u_out = self.model(image, flow, u_image, u_flow)
        logits = out["logits"]
        seg = seg_loss(logits, mask)
        loss, logs = seg, {}
        if unlabeled is not None:
            # Generator pass through the bare discriminator with frozen weights: only the
            # segmentation network learns from it, and DDP sees one forward per backward.
            d = unwrap(self.disc)
            d.requires_grad_(False)
            with autocast(dev, a.amp, a.amp_dtype):
                adv = adversarial_loss(d(u_out["features"]), real=True)
            d.requires_grad_(True)
            loss = seg + a.lambda_adv * adv
            logs["adv"] = adv.detach()
        optimizer_step(loss, self.opt_g, self.scaler_g, self.net.parameters(), a.clip_grad)
        if a.lr_schedule == "cosine":
            self._step_schedulers()
        if unlabeled is not None:
            feats = torch.cat([out["features"], u_out["features"]]).detach()  # B_l real + B_u fake
            with autocast(dev, a.amp, a.amp_dtype):
                d_logits = self.disc(feats)
            d_loss = 0.5 * (adversarial_loss(d_logits[:b], True) + adversarial_loss(d_logits[b:], False))
            optimizer_step(d_loss, self.opt_d, self.scaler_d, self.disc.parameters(), a.clip_grad)
            logs["d"] = d_loss.detach()
        return {"loss": loss.detach(), "seg": seg.detach(), "iou": batch_iou(logits, mask).mean(), **logs}

    def _step_schedulers(self) -> None:
        self.sched_g.step()
        with warnings.catch_warnings():
            # Before --start_adv the discriminator never steps, but its schedule must
            # still advance so both learning rates decay together.
            warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()`"))
            self.sched_d.step()

    # checkpoints -------------------------------------------------------------------------
    def state(self, epoch: int) -> dict:
        return {"model": self.net.state_dict(), "discriminator": unwrap(self.disc).state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                "sched_g": self.sched_g.state_dict(), "sched_d": self.sched_d.state_dict(),
                "scaler_g": self.scaler_g.state_dict(), "scaler_d": self.scaler_d.state_dict(),
                "epoch": epoch, "global_step": self.global_step, "best_j": self.best_j,
                "model_config": self.cfg, "args": vars(self.args), "stage": "offline"}

    def _resume(self, path: str) -> None:
        if path == "auto":
            auto = self.run_dir / "checkpoint_last.pth"
            if not auto.is_file():
                _log.info("--resume auto: no %s yet, starting fresh", auto)
                return
            path = str(auto)
        ckpt = load_checkpoint(path)
        if ckpt.get("stage") != "offline" or "opt_g" not in ckpt:
            raise ValueError(f"{path} is not an offline-training checkpoint with optimizer state; "
                             f"use --finetune to start from its weights")
        load_model_weights(self.net, path, self.cfg)
        unwrap(self.disc).load_state_dict(ckpt["discriminator"])
        for name in ("opt_g", "opt_d", "sched_g", "sched_d", "scaler_g", "scaler_d"):
            getattr(self, name).load_state_dict(ckpt[name])
        self.start_epoch, self.global_step, self.best_j = ckpt["epoch"] + 1, ckpt["global_step"], ckpt["best_j"]
        _log.info("resumed %s: next epoch %d", path, self.start_epoch)

    def _save(self, epoch: int, val_j: float | None) -> None:
        if not self.info.is_main:
            return
        if val_j is not None and val_j > self.best_j:
            self.best_j = val_j
            save_checkpoint(self.run_dir / "checkpoint_best.pth", self.state(epoch))
        save_checkpoint(self.run_dir / "checkpoint_last.pth", self.state(epoch))

    # training ----------------------------------------------------------------------------
    def fit(self) -> dict[str, float]:
        """Train from ``start_epoch`` to ``epochs``; returns the last epoch's figures."""
        a, info = self.args, self.info
        _log.info("training %s on %s for epochs %d..%d, %d processes, device %s", self.cfg["backbone"],
                  a.labeled_datasets, self.start_epoch, a.epochs - 1, info.world_size, info.device)
        last: dict[str, float] = {}
        for epoch in range(self.start_epoch, a.epochs):
            t0 = time.time()
            self.sampler.set_epoch(epoch)
            self.labeled.set_epoch(epoch)
            torch.manual_seed(a.seed + info.rank + 1000 * epoch)  # resumed epochs replay exactly
            adversarial = self.unlabeled is not None and epoch >= a.start_adv
            unl = self._unlabeled_batches(epoch) if adversarial else None
            self.model.train()
            if a.freeze_encoder_bn:
                freeze_batchnorm(self.net.rgb_encoder)
                freeze_batchnorm(self.net.flow_encoder)
            steps = self.steps_per_epoch
            means, self.global_step = run_epoch(islice(self.loader, steps), lambda b: self.step(b, unl), info, epoch,
                                                self.tb, self.global_step, "train", a.log_every, total=steps)
            lr = self.opt_g.param_groups[-1]["lr"]  # the decoder's (the last group)
            if a.lr_schedule == "step":
                self._step_schedulers()
            last = {**means, "lr": lr, "epoch": epoch}
            val_j = None
            if self.val is not None and ((epoch + 1) % a.val_every == 0 or epoch == a.epochs - 1):
                res, samples = validate(self.net, self.val, info, a.batch_size * 2, a.workers, a.amp,
                                        a.amp_dtype)
                val_j = res["J"]
                last["val_J"] = val_j
                self.tb.scalars({"val/J": val_j}, self.global_step)
                if samples:
                    self.tb.images("val/image_gt_pred", _sample_grid(samples), self.global_step)
            self.tb.scalars({"train/epoch_" + k: v for k, v in means.items()} | {"train/lr": lr}, self.global_step)
            _log.info("epoch %d: %s (%.0f s)", epoch,
                      " ".join(f"{k} {v:.4f}" for k, v in last.items() if k != "epoch"), time.time() - t0)
            self._save(epoch, val_j)
            barrier()
        self.tb.close()
        return last

    def evaluate_only(self) -> float:
        """Validation J of the current weights (no training)."""
        res, _ = validate(self.net, self.val, self.info, self.args.batch_size * 2, self.args.workers,
                          self.args.amp, self.args.amp_dtype)
        return res["J"]


def _sample_grid(samples: list) -> np.ndarray:
    """N x 3 x H x (3W) images: frame | ground truth | prediction."""
    rows = []
    for img, gt, prob in samples:
        h, w = gt.shape
        img = torch.nn.functional.interpolate(torch.from_numpy(img)[None], size=(h, w), mode="bilinear")[0].numpy()
        rows.append(np.concatenate([img, np.repeat(gt[None].astype(np.float32), 3, 0),
                                    np.repeat(prob[None].astype(np.float32), 3, 0)], 2))
    hh = min(r.shape[1] for r in rows)
    ww = min(r.shape[2] for r in rows)
    return np.stack([r[:, :hh, :ww] for r in rows])
