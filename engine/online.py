"""Online adversarial self-tuning (OAST stage 2): adapt the offline model to test videos.

Student and teacher start from the offline weights. At each step the teacher (an EMA of
the student, no gradients) predicts several test-time views of the frames and averages
them into soft pseudo-masks; the student learns them with BCE + IoU plus ``lambda_adv`` x
an adversarial loss from a mask discriminator trained to tell teacher masks (real) from
student masks (fake). BatchNorm stays in eval mode (statistics frozen) throughout.
Ground truth is never read: the test set is opened without its label folder.

Modes: ``per_video`` (each video restarts from the offline weights, ``epochs`` passes, then
its masks are written), ``causal`` (frames in order, each predicted before the model learns
from it), ``transductive`` (one model tuned on the whole test set).
"""
from __future__ import annotations

import argparse
import copy
import json
import logging
import time
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler, Subset
from tqdm import tqdm

from datasets import FrameDataset, collate_frames
from engine.inference import MaskWriter, frame_loader, write_predictions
from engine.loop import build_optimizer, grad_scaler, optimizer_step, run_epoch, unwrap
from engine.tta import TTA_VIEWS, sharpen, student_view, tta_probs
from models import build_mask_discriminator, build_model_from_checkpoint
from models.losses import adversarial_loss, seg_loss
from utils.checkpoint import load_checkpoint, save_checkpoint
from utils.config import DEFAULT_TEST_DATASETS
from utils.distributed import DistInfo, all_gather_objects, barrier
from utils.log import TensorBoard, start_run
from utils.misc import autocast, seed_everything

_log = logging.getLogger(__name__)


def add_online_args(p: argparse.ArgumentParser) -> None:
    """Online options. The learning rates (1e-5, both networks) and ``lambda_adv`` (1e-4) are
    the authors' published settings; passes, EMA, TTA views and sharpening are ours (README)."""
    g = p.add_argument_group("online self-tuning")
    g.add_argument("--weights", "--weight", nargs="+", required=True,
                   help="offline checkpoint(s) (several are averaged) to start student and teacher from")
    g.add_argument("--test_datasets", nargs="+", default=DEFAULT_TEST_DATASETS, help="datasets to tune on and segment")
    g.add_argument("--split", default="val", help="split folder of the test sets")
    g.add_argument("--videos", nargs="+", default=None, help="only these videos")
    g.add_argument("--mode", default="per_video", choices=["per_video", "causal", "transductive"],
                   help="per_video: restart per video; causal: predict each frame before learning from it; "
                        "transductive: one model for the whole test set")
    g.add_argument("--epochs", type=int, default=2, help="passes over each video's frames (whole set if transductive)")
    g.add_argument("--causal_steps", type=int, default=1, help="causal mode: tuning steps per incoming batch")
    g.add_argument("--batch_size", type=int, default=2, help="frames per tuning step")
    g.add_argument("--lr", type=float, default=1e-5, help="student AdamW learning rate")
    g.add_argument("--lr_d", type=float, default=1e-5, help="mask discriminator AdamW learning rate")
    g.add_argument("--weight_decay", type=float, default=1e-2, help="AdamW weight decay")
    g.add_argument("--ema", type=float, default=0.99, help="teacher = ema * teacher + (1 - ema) * student")
    g.add_argument("--lambda_adv", type=float, default=1e-4, help="weight of the student's adversarial loss (0: off)")
    g.add_argument("--tta", nargs="+", default=list(TTA_VIEWS), choices=TTA_VIEWS,
                   help="teacher views averaged into pseudo-masks ('--tta identity': no TTA)")
    g.add_argument("--tta_average", default="probs", choices=["probs", "logits"],
                   help="how the teacher's views are combined: mean probability, or mean logit then sigmoid")
    g.add_argument("--tta_scale", type=float, nargs=2, default=(0.5, 1.5), help="rescale-view factor range")
    g.add_argument("--sharpen", type=float, default=0.5,
                   help="temperature T applied to the averaged pseudo-mask, p^(1/T) / (p^(1/T) + (1-p)^(1/T)); 1 = off")
    g.add_argument("--student_aug", type=int, default=0, choices=[0, 1],
                   help="1: the student sees a flipped/colour-jittered view of the frame "
                        "(pseudo-mask flipped to match)")
    g.add_argument("--d_width", type=int, default=32, help="mask discriminator width")
    g.add_argument("--d_size", type=int, nargs=2, default=(128, 224), help="mask discriminator input size")
    g.add_argument("--clip_grad", type=float, default=None, help="clip gradient norm (off if unset)")
    g.add_argument("--predict_with", default="teacher", choices=["teacher", "student"],
                   help="network that writes masks")
    g.add_argument("--flip", action="store_true", help="flip TTA when writing masks (as test.py --flip)")
    g.add_argument("--save_dir", default="outputs/online_masks", help="output root for binary masks")
    g.add_argument("--save_prob", action="store_true", help="also write probability maps")
    g.add_argument("--prob_dir", default=None, help="probability maps root; default <save_dir>_prob")
    g.add_argument("--output_dir", default="runs/online", help="run folder: args, log, timing, resume state")
    g.add_argument("--resume", action="store_true", help="skip videos already finished in <output_dir> "
                   "(transductive: continue from its last epoch)")
    g.add_argument("--no_tensorboard", action="store_true", help="disable TensorBoard logging")


def ema_update(teacher: torch.nn.Module, student: torch.nn.Module, momentum: float) -> None:
    """Teacher parameters follow the student's; buffers (frozen BN statistics) are copied."""
    with torch.no_grad():
        for t, s in zip(teacher.parameters(), student.parameters()):
            t.lerp_(s.detach(), 1 - momentum)
        for t, s in zip(teacher.buffers(), student.buffers()):
            t.copy_(s)


class OnlineTuner:
    """Holds the offline weights and the test set; tunes and writes masks per the mode."""

    def __init__(self, args: argparse.Namespace, info: DistInfo | None = None, writer: MaskWriter | None = None):
        self.args = args
        self.info, self.run_dir = start_run(args, info)
        if args.epochs < 0 or args.batch_size < 1:
            raise ValueError("--epochs must be >= 0 and --batch_size >= 1")
        self.offline = build_model_from_checkpoint(args.weights, args.model_scale, args.backbone)
        # with_labels=False: the label folders are never listed or opened in this stage.
        self.data = FrameDataset(args.data_dir, args.test_datasets, "test", args.split, args.size,
                                 with_labels=False, videos=args.videos)
        prob_dir = (args.prob_dir or f"{str(args.save_dir).rstrip('/')}_prob") if args.save_prob else None
        self.writer = writer or MaskWriter(args.save_dir, prob_dir)
        self.tb = TensorBoard(self.run_dir / "tb", enabled=self.info.is_main and not args.no_tensorboard)
        self.global_step = 0

    # networks --------------------------------------------------------------------------------
    def _fresh(self, seed: int) -> None:
        """Student/teacher from the offline weights, a new discriminator, new optimizers."""
        a, dev = self.args, self.info.device
        torch.manual_seed(seed)
        self.student = copy.deepcopy(self.offline).to(dev).eval()  # eval: BN statistics stay frozen
        self.teacher = copy.deepcopy(self.student).requires_grad_(False)
        self.disc = build_mask_discriminator(a.d_width, tuple(a.d_size)).to(dev)
        if a.mode == "transductive" and self.info.distributed:
            ids = [dev.index] if dev.type == "cuda" else None
            self.student, self.disc = DDP(self.student, device_ids=ids), DDP(self.disc, device_ids=ids)
        self.opt_s = build_optimizer(self.student.parameters(), a.lr, a.weight_decay)
        self.opt_d = build_optimizer(self.disc.parameters(), a.lr_d, a.weight_decay)
        self.scaler_s = grad_scaler(dev, a.amp, a.amp_dtype)
        self.scaler_d = grad_scaler(dev, a.amp, a.amp_dtype)
        self.gen = torch.Generator().manual_seed(seed)

    def predictor(self) -> torch.nn.Module:
        return self.teacher if self.args.predict_with == "teacher" else unwrap(self.student)

    # one tuning step -----------------------------------------------------------------------
    def step(self, batch: dict) -> dict[str, torch.Tensor]:
        a, dev = self.args, self.info.device
        image, flow = batch["image"].to(dev), batch["flow"].to(dev)
        b = image.shape[0]
        with autocast(dev, a.amp, a.amp_dtype):
            pseudo = tta_probs(self.teacher, image, flow, tuple(a.tta), self.gen, tuple(a.tta_scale),
                               a.tta_average)
            pseudo = sharpen(pseudo, a.sharpen)
            if a.student_aug:
                # A perturbed view for the student: learning to agree with the teacher's clean
                # ensemble across views is what gives self-training a signal.
                image, flow, pseudo = student_view(image, flow, pseudo, self.gen)
            logits = self.student(image, flow)["logits"]
        seg = seg_loss(logits, pseudo)
        loss, logs = seg, {}
        prob = logits.float().sigmoid()
        if a.lambda_adv > 0:
            d = unwrap(self.disc)
            d.requires_grad_(False)  # the student's pass must not train the discriminator
            with autocast(dev, a.amp, a.amp_dtype):
                adv = adversarial_loss(d(prob, image), real=True)
            d.requires_grad_(True)
            loss = seg + a.lambda_adv * adv
            logs["adv"] = adv.detach()
        optimizer_step(loss, self.opt_s, self.scaler_s, self.student.parameters(), a.clip_grad)
        if a.lambda_adv > 0:
            with autocast(dev, a.amp, a.amp_dtype):
                d_logits = self.disc(torch.cat([pseudo, prob.detach()]), torch.cat([image, image]))
            d_loss = 0.5 * (adversarial_loss(d_logits[:b], True) + adversarial_loss(d_logits[b:], False))
            optimizer_step(d_loss, self.opt_d, self.scaler_d, self.disc.parameters(), a.clip_grad)
            logs["d"] = d_loss.detach()
        ema_update(self.teacher, unwrap(self.student), a.ema)
        return {"loss": loss.detach(), "seg": seg.detach(), **logs}

    # modes ---------------------------------------------------------------------------------
    def _loader(self, indices: list[int], shuffle_seed: int | None) -> DataLoader:
        if shuffle_seed is not None:
            perm = torch.randperm(len(indices), generator=torch.Generator().manual_seed(shuffle_seed)).tolist()
            indices = [indices[i] for i in perm]
        return DataLoader(Subset(self.data, indices), self.args.batch_size, shuffle=False,
                          num_workers=self.args.workers, collate_fn=collate_frames)

    def _marker(self, dataset: str, video: str) -> Path:
        return self.run_dir / "done" / dataset / f"{video}.json"

    def tune_video(self, key: tuple[str, str], indices: list[int], seed: int) -> dict:
        """Tune on one video (per_video / causal) and write its masks; returns timing."""
        a, dev = self.args, self.info.device
        self._fresh(seed)
        t0 = time.perf_counter()
        desc = f"{key[1]}"
        if a.mode == "per_video":
            for epoch in range(a.epochs):
                _, self.global_step = run_epoch(self._loader(indices, seed * 1000 + epoch), self.step, self._local,
                                                epoch, self.tb, self.global_step, desc, total=None)
            t_tune = time.perf_counter() - t0
            t1 = time.perf_counter()
            write_predictions(self.predictor(), self._loader(indices, None), self.writer, dev, a.flip, a.amp,
                              a.amp_dtype)
            t_pred = time.perf_counter() - t1
        else:  # causal: predict each incoming batch first, then learn from it
            t_pred = 0.0

            def predict_then_learn(batch: dict) -> dict[str, torch.Tensor]:
                nonlocal t_pred
                t1 = time.perf_counter()
                write_predictions(self.predictor(), [batch], self.writer, dev, a.flip, a.amp, a.amp_dtype)
                t_pred += time.perf_counter() - t1
                out = {}
                for _ in range(a.causal_steps if a.epochs > 0 else 0):
                    out = self.step(batch)
                return out or {"loss": torch.zeros(())}

            _, self.global_step = run_epoch(self._loader(indices, None), predict_then_learn, self._local, 0, self.tb,
                                            self.global_step, desc)
            t_tune = time.perf_counter() - t0 - t_pred
        return {"frames": len(indices), "tune_s": t_tune, "predict_s": t_pred}

    @property
    def _local(self) -> DistInfo:
        """Per-video work is local to a rank: no cross-rank reductions inside it (world size 1),
        but the real rank, so that only rank 0 draws progress bars."""
        return DistInfo(self.info.rank, 1, self.info.local_rank, self.info.device)

    def run(self) -> dict:
        """Tune and write masks for the whole test set; returns timing totals."""
        a, info = self.args, self.info
        seed_everything(a.seed, info.rank)
        if a.mode == "transductive":
            timing = self._run_transductive()
        else:
            # Whole videos per rank (no cross-rank sync needed); each video's seed is its global
            # index, so results do not depend on the number of processes.
            videos = list(enumerate(sorted(self.data.video_items().items())))
            mine = videos[info.rank::info.world_size]
            timing = {"frames": 0, "tune_s": 0.0, "predict_s": 0.0}
            bar = tqdm(mine, desc=f"online {a.mode}", disable=not info.is_main, dynamic_ncols=True)
            for v_idx, (key, indices) in bar:
                marker = self._marker(*key)
                if a.resume and marker.is_file():
                    _log.info("skipping %s/%s (finished in an earlier run)", *key)
                    continue
                vt = self.tune_video(key, indices, a.seed + v_idx)
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.write_text(json.dumps(vt))
                for k in timing:
                    timing[k] += vt[k]
            parts = all_gather_objects(timing)
            timing = {k: sum(p[k] for p in parts) for k in timing}
        n = max(timing["frames"], 1)
        timing |= {"tune_s_per_frame": timing["tune_s"] / n, "predict_s_per_frame": timing["predict_s"] / n}
        if info.is_main:
            (self.run_dir / "timing.json").write_text(json.dumps(timing, indent=1))
            _log.info("online %s: %d frames, tuning %.3f s/frame, inference %.3f s/frame; masks in %s", a.mode,
                      timing["frames"], timing["tune_s_per_frame"], timing["predict_s_per_frame"], a.save_dir)
        self.tb.close()
        return timing

    def _run_transductive(self) -> dict:
        a, info = self.args, self.info
        self._fresh(a.seed)
        state_path = self.run_dir / "transductive_last.pth"
        start = 0
        if a.resume and state_path.is_file():
            ck = load_checkpoint(state_path)
            unwrap(self.student).load_state_dict(ck["model"])
            self.teacher.load_state_dict(ck["teacher"])
            unwrap(self.disc).load_state_dict(ck["discriminator"])
            self.opt_s.load_state_dict(ck["opt_s"])
            self.opt_d.load_state_dict(ck["opt_d"])
            start = ck["epoch"] + 1
        sampler = DistributedSampler(self.data, info.world_size, info.rank, shuffle=True, seed=a.seed, drop_last=True)
        loader = DataLoader(self.data, a.batch_size, sampler=sampler, num_workers=a.workers, collate_fn=collate_frames)
        t0 = time.perf_counter()
        for epoch in range(start, a.epochs):
            sampler.set_epoch(epoch)
            _, self.global_step = run_epoch(loader, self.step, info, epoch, self.tb, self.global_step, "transductive")
            if info.is_main:
                save_checkpoint(state_path, {"model": unwrap(self.student).state_dict(),
                                             "teacher": self.teacher.state_dict(),
                                             "discriminator": unwrap(self.disc).state_dict(), "epoch": epoch,
                                             "opt_s": self.opt_s.state_dict(), "opt_d": self.opt_d.state_dict()})
            barrier()
        t_tune = time.perf_counter() - t0
        t1 = time.perf_counter()
        n = write_predictions(self.predictor(), frame_loader(self.data, info, a.batch_size, a.workers), self.writer,
                              info.device, a.flip, a.amp, a.amp_dtype)
        parts = all_gather_objects({"frames": n, "tune_s": t_tune, "predict_s": time.perf_counter() - t1})
        return {"frames": sum(p["frames"] for p in parts), "tune_s": max(p["tune_s"] for p in parts),
                "predict_s": max(p["predict_s"] for p in parts)}
