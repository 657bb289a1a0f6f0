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
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch
from timm.utils import ModelEmaV3
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler

from datasets import FrameDataset, TrainAugment, collate_frames
from engine.loop import (build_optimizer, freeze_batchnorm, grad_scaler, optimizer_step, param_groups, run_epoch,
                         unwrap, warmup_cosine)
from engine.adversarial import discriminator_step, generator_loss
from engine.validate import validate
from engine.variants import add_variant_args
from models import build_feature_discriminator, build_model
from models.discriminators import build_authors_feature_discriminator
from models.losses import batch_iou, non_negative, seg_loss
from models.loading import load_model_weights
from utils.checkpoint import load_checkpoint, remove_orphan_tmp, save_checkpoint
from utils.config import unit_interval
from utils.distributed import DistInfo, all_gather_objects, barrier, convert_sync_bn
from utils.log import TensorBoard, begin_run, check_run_folder, delete_run_files, open_run
from utils.misc import autocast, seed_everything, worker_init_fn

_log = logging.getLogger(__name__)

STAGE1_DIR, STAGE2_DIR = "runs/stage1", "runs/stage2"
RANDOM_INIT_WARNING = ("no --pretrained: both encoders start from random initialisation, and results will be "
                       "poor (far below the paper's). Pass --pretrained with ImageNet weights for the encoders "
                       "(docs/weights.md)")
# Options that change how a run is executed, not what it computes (no warning when they differ on resume).
_RUNTIME_OPTIONS = {"resume", "output_dir", "workers", "local_rank", "device", "overwrite", "config", "log_every",
                    "no_tensorboard", "skip_bad_frames"}


def default_output_dir(args: argparse.Namespace) -> str:
    """``--output_dir``, else the folder of an explicit ``--resume`` checkpoint, else stage 1's or stage 2's folder.

    The two paper stages default to different folders so that stage 2 (``--finetune``) never
    writes over the stage-1 checkpoint it starts from.
    """
    if args.output_dir:
        return str(args.output_dir)
    if args.resume and args.resume != "auto":
        return str(Path(args.resume).parent)
    return STAGE2_DIR if args.finetune else STAGE1_DIR


def add_offline_args(p: argparse.ArgumentParser) -> None:
    """Options of the offline stages; defaults are the paper's settings."""
    g = p.add_argument_group("offline training (paper defaults)")
    g.add_argument("--epochs", type=int, default=30, help="training epochs (stage 1: 30, DAVIS finetune: 25)")
    g.add_argument("--batch_size", type=int, default=2, help="labeled (and unlabeled) frames per GPU/process")
    g.add_argument("--lr", type=float, default=1e-4, help="AdamW learning rate of the segmentation network")
    g.add_argument("--lr_d", type=float, default=1e-4, help="AdamW learning rate of the feature discriminator")
    g.add_argument("--weight_decay", type=float, default=1e-2, help="AdamW weight decay (both networks)")
    g.add_argument("--no_decay_norm_bias", action="store_true",
                   help="no weight decay on the norms' weights and on biases (every 1-d parameter); the paper "
                        "decays every parameter")
    g.add_argument("--warmup_steps", type=int, default=0,
                   help="linear learning-rate warm-up over the first N steps (needs --lr_schedule cosine; 0: none)")
    g.add_argument("--ema_decay", type=non_negative, default=0.0,
                   help="keep an exponential moving average of the network's weights (decay ramping up to this "
                        "value, timm's ModelEmaV3 warm-up); checkpoints' 'model' then holds the average, which "
                        "validation, test.py and the online stage use, and 'model_train' the trained weights "
                        "(0: off, the paper's)")
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
    g.add_argument("--d_width", type=int, default=64, help="feature discriminator width")
    g.add_argument("--clip_grad", type=float, default=None, help="clip gradient norm to this value (off if unset)")
    g.add_argument("--scale_range", type=float, nargs=2, default=(0.8, 1.25),
                   help="random scale of crops, relative to the scale at which the crop just covers the frame; "
                        "crops always stay inside the frame, so draws too small for the drawn rotation are raised")
    g.add_argument("--max_rotation", type=float, default=10.0, help="random rotation range in degrees (+/-)")
    g.add_argument("--zero_flow_prob", type=unit_interval, default=0.0,
                   help="share of training samples whose flow image is replaced by 'no motion', so that the "
                        "appearance path learns objects that barely move (0: off, the paper's)")
    g.add_argument("--final_size", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="training crop size of the last --final_epochs epochs (labeled and unlabeled frames) "
                        "instead of --size, e.g. the test size; checkpoints of those epochs record it as their "
                        "training size (train_size). Validation stays at --size")
    g.add_argument("--final_epochs", type=int, default=0,
                   help="train the last N epochs at --final_size (0: every epoch at --size, the paper's)")
    g.add_argument("--max_steps_per_epoch", type=int, default=None, help="cap steps per epoch (quick runs)")
    v = p.add_argument_group("validation and checkpoints")
    v.add_argument("--val_datasets", nargs="+", default=["DAVIS-2016"], help="sets scored with J after each epoch")
    v.add_argument("--val_split", default="val", help="split used for validation and best-checkpoint selection")
    v.add_argument("--val_every", type=int, default=1, help="validate every N epochs (0: never)")
    v.add_argument("--output_dir", default=None,
                   help="run folder (args.yaml, log.txt, tb/, checkpoint_last.pth, checkpoint_best.pth); default "
                        f"{STAGE1_DIR}, or {STAGE2_DIR} when --finetune is given, or the folder of an explicit "
                        "--resume checkpoint. A folder that already holds a run (its args.yaml, log.txt or "
                        "checkpoint*.pth) is refused unless this run resumes it or --overwrite is given; "
                        "nothing is written before every option is checked")
    v.add_argument("--resume", default=None,
                   help="checkpoint to resume exactly, or 'auto' (<output_dir>/checkpoint_last.pth if any, else "
                        "start fresh). Resuming a finished run only reports that it is finished")
    v.add_argument("--overwrite", action="store_true",
                   help="replace the run already in --output_dir: once every option is checked, its "
                        "checkpoint*.pth, args.yaml, log.txt and tb/ event files are deleted (other files are "
                        "left alone). Cannot be combined with --resume")
    v.add_argument("--finetune", default=None, help="initialise the network's weights only from this checkpoint")
    v.add_argument("--skip_bad_frames", action="store_true",
                   help="a frame, flow image or label that cannot be read is skipped (training: the next "
                        "readable sample is used instead; validation: the frame is left out of J), named once "
                        "in log.txt and counted in the epoch summary. Without it the run stops, naming the "
                        "file, and the last checkpoint_last.pth (also that of an epoch whose validation "
                        "failed) stays for --resume auto")
    v.add_argument("--sync-bn", "--sync_bn", dest="sync_bn", action="store_true",
                   help="SyncBatchNorm across GPUs (CUDA only; ignored with a warning elsewhere)")
    v.add_argument("--log_every", type=int, default=20, help="TensorBoard scalars every N steps")
    v.add_argument("--no_tensorboard", action="store_true", help="disable TensorBoard logging")
    add_variant_args(p, "offline")


def check_final_size(args: argparse.Namespace) -> None:
    """``--final_size`` and ``--final_epochs`` come together: two positive sizes, 1..``--epochs`` epochs.

    Any positive size is accepted, as for ``--size``: the networks pad their input to their stride.
    """
    n, size = args.final_epochs, args.final_size
    if not 0 <= n <= args.epochs:
        raise ValueError(f"--final_epochs {n} must be in [0, --epochs {args.epochs}]")
    if size is None:
        if n > 0:
            raise ValueError(f"--final_epochs {n} needs --final_size H W (the crop size of those epochs)")
        return
    if (not isinstance(size, (list, tuple)) or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
        raise ValueError(f"--final_size {size!r} must be two positive integers H W")
    if n == 0:
        raise ValueError(f"--final_size {size[0]} {size[1]} needs --final_epochs N > 0 (how many of the last "
                         f"epochs train at it)")


def train_size(args: argparse.Namespace, epoch: int) -> tuple[int, int]:
    """The training crop size of ``epoch``: ``--final_size`` in the last ``--final_epochs`` epochs, else ``--size``.

    Decided by the epoch alone, so a resumed run and every DDP rank agree.
    """
    final_epochs = getattr(args, "final_epochs", 0)  # runs made before the option have none
    if final_epochs and epoch >= args.epochs - final_epochs:
        return int(args.final_size[0]), int(args.final_size[1])
    return int(args.size[0]), int(args.size[1])


class PairedForward(nn.Module):
    """The network applied to a labeled and an optional unlabeled batch in one forward.

    The network is called once per batch, so every BatchNorm batch holds one kind of frame
    (one concatenated batch, mixing the two domains in BatchNorm, did much worse:
    benchmarks/RESULTS.md, "Retired options"). It is still a single module forward, so DDP
    sees one forward per backward: autograd sums a parameter's two gradient contributions
    before DDP's hook on it fires.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor, flow: torch.Tensor, u_image: torch.Tensor | None = None,
                u_flow: torch.Tensor | None = None) -> tuple[dict, dict | None]:
        if u_image is None:
            return self.net(image, flow), None
        return self.net(image, flow), self.net(u_image, u_flow)


class OfflineTrainer:
    """Builds model, discriminator, data, optimizers from ``args``; ``fit()`` trains."""

    def __init__(self, args: argparse.Namespace, info: DistInfo | None = None):
        """Check every option (folder, weights, data, resume file) first; only then write the run folder."""
        self.args = args
        if args.warmup_steps > 0 and args.lr_schedule != "cosine":
            raise ValueError(f"--warmup_steps {args.warmup_steps} needs --lr_schedule cosine (the step schedule "
                             f"changes the rate once an epoch)")
        check_final_size(args)
        args.output_dir = default_output_dir(args)  # resolved, so args.yaml and checkpoints record it
        self.info, self.run_dir = begin_run(args, info)
        self._replaced = check_run_folder(self.run_dir, args.resume, args.overwrite, args.finetune)
        seed_everything(args.seed, self.info.rank)
        dev = self.info.device
        model = build_model(args.model_scale, args.backbone, args.pretrained, arch=args.arch, head=args.decoder_head,
                            blocks=args.blocks)
        self.cfg = model.config
        disc = (build_authors_feature_discriminator(model) if args.feature_disc == "authors"
                else build_feature_discriminator(model, args.d_width))
        if args.finetune:
            load_model_weights(model, args.finetune, self.cfg)
            _log.info("initialised the network from %s (weights only)", args.finetune)
        if args.sync_bn:
            model = convert_sync_bn(model, self.info)
        self.net, disc = model.to(dev), disc.to(dev)  # the bare network: saved, validated
        model = PairedForward(self.net)
        if self.info.distributed:
            ids = [dev.index] if dev.type == "cuda" else None
            model, disc = DDP(model, device_ids=ids), DDP(disc, device_ids=ids)
        self.model, self.disc = model, disc  # what trains: PairedForward, DDP-wrapped when distributed
        # One parameter group unless the encoders get their own rate or the norms and biases no
        # decay (keeps old runs resumable).
        params = (self.net.parameters() if args.encoder_lr_mult == 1 and not args.no_decay_norm_bias
                  else param_groups(self.net, args.lr, args.encoder_lr_mult,
                                    args.weight_decay if args.no_decay_norm_bias else None))
        self.opt_g = build_optimizer(params, args.lr, args.weight_decay)
        self.opt_d = build_optimizer(disc.parameters(), args.lr_d, args.weight_decay)
        # The averaged weights: what is validated, tested and saved as 'model'.
        self.ema = ModelEmaV3(self.net, decay=args.ema_decay, use_warmup=True) if args.ema_decay > 0 else None
        self.ema_updates = 0
        self._build_data()
        self.sched_g, self.sched_d = self._scheduler(self.opt_g), self._scheduler(self.opt_d)
        self.scaler_g = grad_scaler(dev, args.amp, args.amp_dtype)
        self.scaler_d = grad_scaler(dev, args.amp, args.amp_dtype)
        self.start_epoch, self.global_step, self.best_j = 0, 0, -1.0
        self.summary: dict[str, float] = {}  # the last epoch's figures (kept in checkpoints)
        self.val_pending = False  # the last saved epoch still has to be validated
        self._named: set[str] = set()  # unreadable files already named in the log
        self._epoch_skips: list[tuple[str, str]] = []
        self._where, self._saved_epoch = "start-up", None
        self._origin = vars(args)  # the options the weights started from (the resumed run's, once resumed)
        if args.resume:
            self._resume(args.resume)
        if not self._origin.get("pretrained") and not self._origin.get("finetune") and self.info.is_main:
            _log.warning(RANDOM_INIT_WARNING)
        barrier()  # every rank has checked the folder before rank 0 writes to it
        self._open_run()
        self.tb = TensorBoard(self.run_dir / "tb",
                              enabled=self.info.is_main and not args.no_tensorboard and not self.finished)

    @property
    def finished(self) -> bool:
        """Whether every epoch is trained and validated (a resumed finished run has nothing to do)."""
        return self.start_epoch >= self.args.epochs and not self.val_pending

    def _open_run(self) -> None:
        """Rank 0: clear a replaced run (--overwrite), drop a killed save's temp files, start log.txt and args.yaml."""
        if not self.info.is_main:
            return
        deleted = delete_run_files(self._replaced)
        orphans = remove_orphan_tmp(self.run_dir)
        # A finished run's args.yaml stays as it was: nothing new is trained.
        open_run(self.args, self.info, self.run_dir, write_args=not self.finished)
        if deleted:
            _log.warning("--overwrite: deleted the previous run's %d files in %s: %s", len(deleted), self.run_dir,
                         ", ".join(str(f.relative_to(self.run_dir)) for f in deleted))
        if orphans:
            _log.info("removed %d temporary file(s) of an interrupted checkpoint save: %s", len(orphans),
                      ", ".join(str(o) for o in orphans))

    def _scheduler(self, opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
        """The paper's step decay (stepped per epoch), or a per-step cosine for short runs."""
        a = self.args
        if a.lr_schedule == "cosine":
            total = max(a.epochs * self.steps_per_epoch, 1)
            if a.warmup_steps > 0:
                return torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(total, a.warmup_steps))
            return torch.optim.lr_scheduler.CosineAnnealingLR(opt, total)
        return torch.optim.lr_scheduler.StepLR(opt, a.lr_step, a.lr_gamma)

    @property
    def steps_per_epoch(self) -> int:
        n = len(self.loader)
        return n if self.args.max_steps_per_epoch is None else min(n, self.args.max_steps_per_epoch)

    # data ------------------------------------------------------------------------------
    def _build_data(self) -> None:
        a, info = self.args, self.info
        aug = TrainAugment(tuple(a.size), tuple(a.scale_range), a.max_rotation, zero_flow_prob=a.zero_flow_prob)
        self.labeled = FrameDataset(a.data_dir, a.labeled_datasets, "labeled", a.labeled_split, a.size,
                                    a.youtube_stride, aug, seed=a.seed, skip_bad=a.skip_bad_frames)
        self.sampler = DistributedSampler(self.labeled, info.world_size, info.rank, shuffle=True, seed=a.seed,
                                          drop_last=True)
        self.loader = DataLoader(self.labeled, a.batch_size, sampler=self.sampler, num_workers=a.workers,
                                 collate_fn=collate_frames, drop_last=True, worker_init_fn=worker_init_fn,
                                 pin_memory=info.device.type == "cuda",
                                 persistent_workers=False)  # workers restart each epoch: set_epoch, set_train_size
        if len(self.loader) == 0:
            raise ValueError(f"{len(self.labeled)} labeled frames is less than one batch of {a.batch_size} per process")
        self.unlabeled = None
        if a.lambda_adv > 0 and a.start_adv < a.epochs:
            self.unlabeled = FrameDataset(a.data_dir, a.unlabeled_datasets, "unlabeled", a.unlabeled_split, a.size,
                                          augment=aug, seed=a.seed + 1, skip_bad=a.skip_bad_frames)
        self.val = None
        if a.val_every > 0 and a.val_datasets:
            self.val = FrameDataset(a.data_dir, a.val_datasets, "test", a.val_split, a.size, with_labels=True,
                                    skip_bad=a.skip_bad_frames)

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
            yield from self._tally(loader)

    def _tally(self, batches: Iterable[dict]) -> Iterator[dict]:
        """The batches, with the files a ``skip_bad`` dataset stepped over moved to this epoch's list."""
        for batch in batches:
            self._epoch_skips += batch.pop("skipped", [])
            yield batch

    def _note_skipped(self, skipped: list[tuple[str, str]], where: str) -> int:
        """Rank 0 names each unreadable file once per run; returns how many reads were skipped."""
        if self.info.is_main:
            for path, err in skipped:
                if path not in self._named:
                    self._named.add(path)
                    _log.warning("--skip_bad_frames: skipped unreadable %s file %s (%s)", where, path, err)
        return len(skipped)

    # one step ----------------------------------------------------------------------------
    def step(self, batch: dict, unlabeled: Iterator[dict] | None) -> dict[str, torch.Tensor]:
        a, dev = self.args, self.info.device
        image, flow, mask = batch["image"].to(dev), batch["flow"].to(dev), batch["mask"].to(dev)
        u_image = u_flow = None
        if unlabeled is not None:
            ub = next(unlabeled)
            u_image, u_flow = ub["image"].to(dev), ub["flow"].to(dev)
        with autocast(dev, a.amp, a.amp_dtype):
            out, u_out = self.model(image, flow, u_image, u_flow)
        logits = out["logits"]
        seg = seg_loss(logits, mask, a.iou_smooth)
        loss, logs = seg, {}
        if unlabeled is not None:
            adv = generator_loss(self.disc, u_out["features"], None, dev, a.amp, a.amp_dtype)
            loss = loss + a.lambda_adv * adv
            logs["adv"] = adv.detach()
        optimizer_step(loss, self.opt_g, self.scaler_g, self.net.parameters(), a.clip_grad)
        if self.ema is not None:
            self.ema_updates += 1
            self.ema.update(self.net, self.ema_updates)
        if a.lr_schedule == "cosine":
            self._step_schedulers()
        if unlabeled is not None:  # B_l real + B_u fake
            logs["d"] = discriminator_step(self.disc, self.opt_d, self.scaler_d, out["features"], u_out["features"],
                                           None, a.d_loss_weight, a.clip_grad, dev, a.amp, a.amp_dtype)
        return {"loss": loss.detach(), "seg": seg.detach(), "iou": batch_iou(logits, mask).mean(), **logs}

    def _step_schedulers(self) -> None:
        self.sched_g.step()
        with warnings.catch_warnings():
            # Before --start_adv the discriminator never steps, but its schedule must
            # still advance so both learning rates decay together.
            warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()`"))
            self.sched_d.step()

    # checkpoints -------------------------------------------------------------------------
    @property
    def eval_net(self) -> nn.Module:
        """The weights that are validated and saved as 'model': the average when --ema_decay is on."""
        return self.ema.module if self.ema is not None else self.net

    def state(self, epoch: int) -> dict:
        weights = {"model": self.eval_net.state_dict()}
        if self.ema is not None:
            weights |= {"model_train": self.net.state_dict(), "ema_updates": self.ema_updates}
        return {**weights, "discriminator": unwrap(self.disc).state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                "sched_g": self.sched_g.state_dict(), "sched_d": self.sched_d.state_dict(),
                "scaler_g": self.scaler_g.state_dict(), "scaler_d": self.scaler_d.state_dict(),
                "epoch": epoch, "global_step": self.global_step, "best_j": self.best_j,
                "summary": dict(self.summary), "val_pending": self.val_pending,
                "train_size": list(train_size(self.args, epoch)),  # what this epoch's crops were (H, W)
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
        load_model_weights(self.net, path, self.cfg, key="model_train")  # 'model' when it has no average
        if self.ema is not None:
            if "model_train" in ckpt:
                self.ema.module.load_state_dict(ckpt["model"])
                self.ema_updates = int(ckpt.get("ema_updates", 0))
            else:  # a run without the average: it starts from the resumed weights
                self.ema.module.load_state_dict(self.net.state_dict())
        saved_disc = (ckpt.get("args") or {}).get("feature_disc", "ours")
        if saved_disc != self.args.feature_disc:
            raise ValueError(f"{path} was trained with --feature_disc {saved_disc}, not {self.args.feature_disc}; "
                             f"resume with --feature_disc {saved_disc} (or --preset of that run)")
        unwrap(self.disc).load_state_dict(ckpt["discriminator"])
        old = ckpt.get("args") or {}
        changed = [f"--{k} {v!r} (checkpoint: {old[k]!r})" for k, v in sorted(vars(self.args).items())
                   if k in old and k not in _RUNTIME_OPTIONS and _plain(old[k]) != _plain(v)]
        for name in ("opt_g", "opt_d", "sched_g", "sched_d", "scaler_g", "scaler_d"):
            try:
                getattr(self, name).load_state_dict(ckpt[name])
            except (ValueError, KeyError) as e:  # e.g. --encoder_lr_mult 1 has one parameter group, others two
                raise ValueError(f"{path}: its {name} state does not fit this run's ({e}); options that differ "
                                 f"from the checkpoint's: {', '.join(changed) or 'none'}. Resume with the "
                                 f"checkpoint's options, or start a new run in another --output_dir") from e
        self.start_epoch, self.global_step, self.best_j = ckpt["epoch"] + 1, ckpt["global_step"], ckpt["best_j"]
        self.summary = dict(ckpt.get("summary", {}))
        self.val_pending = bool(ckpt.get("val_pending", False)) and self.val is not None
        self._saved_epoch = ckpt["epoch"]
        _log.info("resumed %s: next epoch %d%s", path, self.start_epoch,
                  f" (epoch {ckpt['epoch']} is validated first)" if self.val_pending else "")
        self._origin = {**vars(self.args), **old}
        if changed and self.info.is_main:
            _log.warning("resuming %s with options that differ from its run's: %s", path, ", ".join(changed))

    def _save(self, name: str, epoch: int) -> None:
        """Rank 0 writes ``<run_dir>/<name>`` (atomically)."""
        if self.info.is_main:
            save_checkpoint(self.run_dir / name, self.state(epoch))

    # training ----------------------------------------------------------------------------
    def fit(self) -> dict[str, float]:
        """Train from ``start_epoch`` to ``epochs``; returns the last epoch's figures.

        Each epoch's ``checkpoint_last.pth`` is written before its validation, so an
        unreadable validation file cannot lose the epoch; ``checkpoint_best.pth`` and the
        final ``checkpoint_last.pth`` follow the validation. Whatever stops the run is written
        with its traceback to ``log.txt``.
        """
        try:
            return self._fit()
        except BaseException as e:
            self._log_stop(e)
            raise
        finally:
            self.tb.close()

    def _fit(self) -> dict[str, float]:
        a, info = self.args, self.info
        if self.val_pending:  # resumed from a checkpoint saved before its validation finished
            self._validate(self.start_epoch - 1)
            _log.info("epoch %d: %s", self.start_epoch - 1, _figures(self.summary))
        if self.start_epoch >= a.epochs:
            _log.info("%s: the run is finished (%d of %d epochs); nothing to do (raise --epochs to train on)",
                      self.run_dir, self.start_epoch, a.epochs)
            return self.summary
        _log.info("training %s on %s for epochs %d..%d, %d processes, device %s", self.cfg["backbone"],
                  a.labeled_datasets, self.start_epoch, a.epochs - 1, info.world_size, info.device)
        last: dict[str, float] = {}
        for epoch in range(self.start_epoch, a.epochs):
            self._where = f"training of epoch {epoch}"
            t0 = time.time()
            self._set_train_size(epoch)
            self.sampler.set_epoch(epoch)
            self.labeled.set_epoch(epoch)
            torch.manual_seed(a.seed + info.rank + 1000 * epoch)  # resumed epochs replay exactly
            adversarial = self.unlabeled is not None and epoch >= a.start_adv
            unl = self._unlabeled_batches(epoch) if adversarial else None
            self.model.train()
            if a.freeze_encoder_bn:
                for name in ("rgb_encoder", "flow_encoder", "encoder"):  # two_stream's or oast3d's
                    if hasattr(self.net, name):
                        freeze_batchnorm(getattr(self.net, name))
            steps = self.steps_per_epoch
            self._epoch_skips = []
            means, self.global_step = run_epoch(islice(self._tally(self.loader), steps),
                                                lambda b: self.step(b, unl), info, epoch, self.tb, self.global_step,
                                                "train", a.log_every, total=steps)
            lr = self.opt_g.param_groups[-1]["lr"]  # the decoder's (the last group)
            if a.lr_schedule == "step":
                self._step_schedulers()
            last = {**means, "lr": lr, "epoch": epoch}
            if a.skip_bad_frames:  # every rank's skips, named in rank 0's log
                parts = all_gather_objects(self._epoch_skips)
                last["skipped"] = self._note_skipped([x for part in parts for x in part], "training")
            self.summary = last
            self.val_pending = self.val is not None and ((epoch + 1) % a.val_every == 0 or epoch == a.epochs - 1)
            self._save("checkpoint_last.pth", epoch)  # the epoch is safe before validation reads a file
            self._saved_epoch = epoch
            if self.val_pending:
                self._validate(epoch)
            self.tb.scalars({"train/epoch_" + k: v for k, v in means.items()} | {"train/lr": lr}, self.global_step)
            _log.info("epoch %d: %s (%.0f s)", epoch, _figures(last), time.time() - t0)
            barrier()
        return last

    def _set_train_size(self, epoch: int) -> None:
        """Give the training sets ``epoch``'s crop size before their loaders iterate.

        Both loaders start their workers for each epoch (no persistent workers), so the workers
        copy the datasets with this size.
        """
        a = self.args
        hw = train_size(a, epoch)
        if a.final_epochs and epoch == max(self.start_epoch, a.epochs - a.final_epochs):
            _log.info("epoch %d: training at %dx%d from here (--final_size, the last %d epochs)", epoch, *hw,
                      a.final_epochs)
        for ds in (self.labeled, self.unlabeled):
            if ds is not None:
                ds.set_train_size(hw)

    def _validate(self, epoch: int) -> None:
        """Validate the weights of ``epoch`` (already saved), then update the best and last checkpoints."""
        a = self.args
        self._where = f"validation of epoch {epoch}"
        res, samples = validate(self.eval_net, self.val, self.info, a.batch_size * 2, a.workers, a.amp, a.amp_dtype)
        val_j = res["J"]
        self.summary["val_J"] = val_j
        if a.skip_bad_frames:
            self.summary["val_skipped"] = self._note_skipped(res["skipped"], "validation")
        self.tb.scalars({"val/J": val_j}, self.global_step)
        if samples:
            self.tb.images("val/image_gt_pred", _sample_grid(samples), self.global_step)
        self.val_pending = False
        if val_j > self.best_j:
            self.best_j = val_j
            self._save("checkpoint_best.pth", epoch)
        self._save("checkpoint_last.pth", epoch)  # now with the validation's result and best J

    def _log_stop(self, e: BaseException) -> None:
        """Write what stopped the run, its traceback and how to go on, to the log (log.txt on rank 0)."""
        saved = (f"{self.run_dir / 'checkpoint_last.pth'} holds epoch {self._saved_epoch}"
                 if self._saved_epoch is not None else "no epoch was saved yet")
        if isinstance(e, (OSError, ValueError)) and any(m in str(e) for m in ("cannot read", "sizes differ")):
            hint = ("a data file cannot be used (named above): replace it" +
                    ("" if self.args.skip_bad_frames else ", or pass --skip_bad_frames to skip unreadable frames")
                    + "; ")
        else:
            hint = ""
        what = "interrupted" if isinstance(e, KeyboardInterrupt) else f"stopped by {type(e).__name__}"
        _log.error("run %s during the %s: %s\n%s; %sto continue, run the same command with --resume auto",
                   what, self._where, e, saved, hint, exc_info=e)

    def evaluate_only(self) -> float:
        """Validation J of the current weights (no training)."""
        res, _ = validate(self.eval_net, self.val, self.info, self.args.batch_size * 2, self.args.workers,
                          self.args.amp, self.args.amp_dtype)
        return res["J"]


def _plain(v: object) -> object:
    """Option values compared across YAML/argparse round trips (tuples and lists alike)."""
    return list(v) if isinstance(v, tuple) else v


def _figures(values: dict[str, float]) -> str:
    """``loss 0.1234 ... skipped 2``: an epoch's figures, counts without decimals."""
    return " ".join(f"{k} {v}" if isinstance(v, int) else f"{k} {v:.4f}" for k, v in values.items() if k != "epoch")


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
