"""Online adversarial self-tuning (OAST stage 2): adapt the offline model to test videos.

Student and teacher start from the offline weights. At each step the teacher (an EMA of
the student, no gradients) predicts several test-time views of the frames and averages
them into soft pseudo-masks; the student learns them with BCE + IoU plus ``lambda_adv`` x
an adversarial loss from a mask discriminator trained to tell teacher masks (real) from
student masks (fake). BatchNorm stays in eval mode (statistics frozen) throughout.
Ground truth is never read: the test set is opened without its label folder.

Modes: ``per_video`` (each video restarts from the offline weights, ``epochs`` passes, then
its masks are written), ``transductive`` (one model tuned on the whole test set).

``--resume`` reuses a finished video only when its record names the same weights, options,
inputs and save folder and its masks are unchanged (engine/online_records.py); each reason
to re-tune is logged once, and a run that finds everything done says so.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from datasets import FrameDataset, collate_frames
from engine.adversarial import discriminator_step, generator_loss
from engine.inference import (MaskWriter, rank_videos, write_fused_video, write_predictions,
                              write_view_predictions)
from engine.loop import build_optimizer, grad_scaler, optimizer_step, run_epoch, unwrap
from engine.online_records import (plan_videos, record_path, resume_messages, save_roots, state_mismatches,
                                   transductive_key, write_record, written_files)
from engine.online_config import MODES, TARGETS, OnlineConfig
from engine.pseudo_labels import (IGNORE, auto_band_weight, band_share, build_targets, in_band, label_cover,
                                  masked_seg_loss)
from engine.temporal import FlowCache, TargetConfig
from engine.tta import TTA_CHOICES, sharpen, tta_probs
from engine.variants import add_variant_args
from models import build_mask_discriminator, build_model_from_checkpoint
from models.discriminators import build_authors_mask_discriminator
from models.losses import seg_loss
from utils.checkpoint import load_checkpoint, save_checkpoint
from utils.config import save_args
from utils.distributed import DistInfo, all_gather_objects, barrier, init_distributed, shard_indices
from utils.io import atomic_write, in_progress, weights_identity
from utils.log import TensorBoard, keep_records, log_to_file
from utils.misc import autocast, seed_everything

_log = logging.getLogger(__name__)


def _default(name: str) -> Any:
    """The command line's default of an online option: the :class:`OnlineConfig` field's (the
    one place defaults are written), as argparse holds it (lists for sequences)."""
    value = _ONLINE_DEFAULTS[name]
    return list(value) if isinstance(value, tuple) else value


_ONLINE_DEFAULTS = {f.name: f.default for f in dataclasses.fields(OnlineConfig)}


def _weight_or_auto(text: str) -> float | str:
    """argparse type of ``--band_weight``: a number, or ``auto``."""
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from None


def add_online_args(p: argparse.ArgumentParser) -> None:
    """Online options; their defaults are :class:`OnlineConfig`'s: the setting chosen on held-out
    DAVIS train sequences (benchmarks/RESULTS.md); ``--preset authors`` gives the authors' one."""
    g = p.add_argument_group("online self-tuning")
    g.add_argument("--weights", "--weight", nargs="+", required=True,
                   help="offline checkpoint(s) (several are averaged) to start student and teacher from")
    g.add_argument("--test_datasets", nargs="+", default=_default("test_datasets"),
                   help="datasets to tune on and segment")
    g.add_argument("--split", default=_default("split"), help="split folder of the test sets")
    g.add_argument("--videos", nargs="+", default=_default("videos"), help="only these videos")
    g.add_argument("--mode", default=_default("mode"), choices=MODES,
                   help="per_video: restart per video; transductive: one model for the whole test set")
    g.add_argument("--epochs", type=int, default=_default("epochs"),
                   help="passes over each video's frames (whole set if transductive)")
    g.add_argument("--batch_size", type=int, default=_default("batch_size"), help="frames per tuning step")
    g.add_argument("--lr", type=float, default=_default("lr"), help="student AdamW learning rate")
    g.add_argument("--lr_d", type=float, default=_default("lr_d"), help="mask discriminator AdamW learning rate")
    g.add_argument("--weight_decay", type=float, default=_default("weight_decay"), help="AdamW weight decay")
    g.add_argument("--ema", type=float, default=_default("ema"), help="teacher = ema * teacher + (1 - ema) * student")
    g.add_argument("--lambda_adv", type=float, default=_default("lambda_adv"),
                   help="weight of the student's adversarial loss (0: off)")
    g.add_argument("--tta", nargs="+", default=_default("tta"), choices=TTA_CHOICES,
                   help="teacher views averaged into per-step pseudo-masks (--targets per_step; '--tta identity': no TTA)")
    g.add_argument("--tta_average", default=_default("tta_average"), choices=["probs", "logits"],
                   help="how the teacher's views are combined: mean probability, or mean logit then sigmoid")
    g.add_argument("--tta_scale", type=float, nargs=2, default=_default("tta_scale"), help="rescale-view factor range")
    g.add_argument("--sharpen", type=float, default=_default("sharpen"),
                   help="temperature T applied to the averaged pseudo-mask, p^(1/T) / (p^(1/T) + (1-p)^(1/T)); 1 = off")
    g.add_argument("--targets", default=_default("targets"), choices=TARGETS,
                   help="per_step: the teacher's TTA views averaged anew at every step (soft targets on every "
                        "pixel); cached: built once per pass from the teacher's view at --size and its mirror, "
                        "fused over time (--temporal) and cut at --confidence into hard labels, other pixels "
                        "ignored")
    g.add_argument("--temporal", type=int, nargs="*", default=_default("temporal"),
                   help="cached targets: neighbour offsets k whose predictions (t-k, t+k) are warped into frame t "
                        "with DIS flow and a forward-backward check ('' for none)")
    g.add_argument("--confidence", type=float, nargs=2, default=_default("confidence"), metavar=("LO", "HI"),
                   help="cached targets: background label below LO, object label above HI, ignored between")
    g.add_argument("--motion_veto", type=float, default=_default("motion_veto"), metavar="REL",
                   help="cached targets: drop background labels on pixels that move unlike the background "
                        "(a homography fitted to the flow) by more than REL times the object labels' median "
                        f"departure and {TargetConfig.motion_floor} pixels; frames where that would drop over "
                        f"{100 * TargetConfig.motion_max_share:.0f}%% of them keep all (0: off)")
    g.add_argument("--min_cover", type=float, default=_default("min_cover"),
                   help="cached targets: learn from a frame only if its object labels cover at least this "
                        "fraction of the teacher's mask (p > 0.5) and its background labels this fraction of the "
                        "rest (0: every frame with labels of both kinds); a video with no such frame is not tuned")
    g.add_argument("--iou_weight", type=float, default=_default("iou_weight"),
                   help="cached targets: weight of the soft IoU term of the loss (BCE + this x IoU over the "
                        "labelled pixels; 0: BCE only)")
    g.add_argument("--band_weight", type=_weight_or_auto, default=_default("band_weight"), metavar="W|auto",
                   help="cached targets: weight of a BCE against the teacher's (fused) probability on the pixels "
                        "between the --confidence thresholds, which are otherwise ignored (0: ignored); auto: "
                        "per video, from the share of its pixels in that band (--band_share)")
    g.add_argument("--band_share", type=float, nargs=2, default=_default("band_share"), metavar=("LO", "HI"),
                   help="--band_weight auto: a video's weight is 0 when at most LO of its pixels lie between the "
                        "thresholds (a confident teacher: the student resolves them), 1 from HI on (an unsure one: "
                        "the band holds the boundaries), linear between")
    g.add_argument("--d_width", type=int, default=_default("d_width"), help="mask discriminator width")
    g.add_argument("--d_size", type=int, nargs=2, default=_default("d_size"), help="mask discriminator input size")
    g.add_argument("--clip_grad", type=float, default=_default("clip_grad"), help="clip gradient norm (off if unset)")
    g.add_argument("--predict_with", default=_default("predict_with"), choices=["teacher", "student"],
                   help="network that writes masks")
    g.add_argument("--flip", action="store_true", help="flip TTA when writing masks (as test.py --flip)")
    g.add_argument("--scales", type=float, nargs="+", default=_default("scales"),
                   help="input sizes (multiples of --size) averaged when writing masks (as test.py --scales)")
    g.add_argument("--write_temporal", type=int, nargs="*", default=_default("write_temporal"),
                   help="offsets k: each written mask's probability is fused with its t-k and t+k neighbours', "
                        "warped in with DIS flow, as test.py --temporal (give the option with no value for none)")
    g.add_argument("--save_dir", default=_default("save_dir"), help="output root for binary masks")
    g.add_argument("--save_prob", action="store_true", help="also write probability maps")
    g.add_argument("--prob_dir", default=_default("prob_dir"), help="probability maps root; default <save_dir>_prob")
    g.add_argument("--output_dir", default=_default("output_dir"), help="run folder: args, log, timing, resume state")
    g.add_argument("--resume", action="store_true",
                   help="reuse videos finished in <output_dir> by the same weights (sha1), mask-affecting "
                        "options, input frames and save folder whose masks are still there; re-tune the rest "
                        "(transductive: continue from its last epoch under the same conditions)")
    g.add_argument("--no_tensorboard", action="store_true", help="disable TensorBoard logging")
    add_variant_args(p, "online")


class Indexed(torch.utils.data.Dataset):
    """``dataset[indices[i]]`` with its index (``"index"``), for the cached targets."""

    def __init__(self, dataset: torch.utils.data.Dataset, indices):
        self.dataset, self.indices = dataset, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        return {**self.dataset[self.indices[i]], "index": self.indices[i]}


def ema_update(teacher: torch.nn.Module, student: torch.nn.Module, momentum: float) -> None:
    """Teacher parameters follow the student's; buffers (frozen BN statistics) are copied."""
    with torch.no_grad():
        for t, s in zip(teacher.parameters(), student.parameters()):
            t.lerp_(s.detach(), 1 - momentum)
        for t, s in zip(teacher.buffers(), student.buffers()):
            t.copy_(s)


class OnlineTuner:
    """Holds the offline weights and the test set; tunes and writes masks per the mode.

    Built from an :class:`~engine.online_config.OnlineConfig`; ``online_finetuning.py`` makes
    one from its command line and sets up logging, the video tool makes one directly.
    """

    def __init__(self, config: OnlineConfig, info: DistInfo | None = None, writer: MaskWriter | None = None):
        """``info``: the process group (default: set up from ``config.device`` and the launcher's
        environment); ``writer``: where masks go (default: ``config.save_dir``/``prob_dir``).

        Logging is the caller's to configure: the tuner adds handlers of its own only while it
        works (keeping the records of its start; appending to ``<output_dir>/log.txt`` on rank 0
        during :meth:`run`) and removes them before returning or raising.
        """
        self.config = c = config
        self.info = info or init_distributed(c.device)
        self.run_dir = Path(c.output_dir)
        self._startup: list[logging.LogRecord] = []  # for log.txt, which run() opens
        with keep_records(self._startup):
            # Nothing is written to the run folder until the weights and the data have been checked.
            self.offline = build_model_from_checkpoint(list(c.weights), c.model_scale, c.backbone, c.arch)
            # with_labels=False: the label folders are never listed or opened in this stage.
            self.data = FrameDataset(c.data_dir, list(c.test_datasets), "test", c.split, c.size, with_labels=False,
                                     videos=list(c.videos) if c.videos is not None else None)
            self.writer = writer or MaskWriter.for_options(c.save_dir, c.save_prob, c.prob_dir)
            # What made the masks, for the resume records (sha1 of the checkpoints: ~10 ms per 20 MB).
            self.weights_id = weights_identity(c.weights)
            if self.info.is_main:
                save_args(c.to_dict(), self.run_dir)
            self.tb = TensorBoard(self.run_dir / "tb", enabled=self.info.is_main and not c.no_tensorboard)
        self.global_step = 0
        self.flow_cache = FlowCache()  # the targets' flows, reused when the same video's masks are fused

    # networks --------------------------------------------------------------------------------
    def _fresh(self, seed: int) -> None:
        """Student/teacher from the offline weights, a new discriminator, new optimizers."""
        c, dev = self.config, self.info.device
        torch.manual_seed(seed)
        self.student = copy.deepcopy(self.offline).to(dev).eval()  # eval: BN statistics stay frozen
        self.teacher = copy.deepcopy(self.student).requires_grad_(False)
        self.disc = (build_authors_mask_discriminator() if c.mask_disc == "authors"
                     else build_mask_discriminator(c.d_width, tuple(c.d_size))).to(dev)
        if c.mode == "transductive" and self.info.distributed:
            ids = [dev.index] if dev.type == "cuda" else None
            self.student, self.disc = DDP(self.student, device_ids=ids), DDP(self.disc, device_ids=ids)
        self.opt_s = build_optimizer(self.student.parameters(), c.lr, c.weight_decay)
        self.opt_d = build_optimizer(self.disc.parameters(), c.lr_d, c.weight_decay)
        self.scaler_s = grad_scaler(dev, c.amp, c.amp_dtype)
        self.scaler_d = grad_scaler(dev, c.amp, c.amp_dtype)
        self.gen = torch.Generator().manual_seed(seed)
        # index -> (probability, labels, the video's band weight)
        self.targets: dict[int, tuple[torch.Tensor, torch.Tensor, float]] = {}

    def predictor(self) -> torch.nn.Module:
        return self.teacher if self.config.predict_with == "teacher" else unwrap(self.student)

    # one tuning step -----------------------------------------------------------------------
    def step(self, batch: dict) -> dict[str, torch.Tensor]:
        c, dev = self.config, self.info.device
        image, flow = batch["image"].to(dev), batch["flow"].to(dev)
        with autocast(dev, c.amp, c.amp_dtype):
            pseudo = tta_probs(self.teacher, image, flow, tuple(c.tta), self.gen, tuple(c.tta_scale),
                               c.tta_average)
            pseudo = sharpen(pseudo, c.sharpen)
            logits = self.student(image, flow)["logits"]
        seg = seg_loss(logits, pseudo, c.iou_smooth)
        return self._update(seg, logits, pseudo, image)

    def _update(self, seg: torch.Tensor, logits: torch.Tensor, real: torch.Tensor,
                image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Student step on ``seg`` (+ the adversarial term), discriminator step (teacher masks
        ``real`` vs the student's), EMA update of the teacher."""
        c, dev = self.config, self.info.device
        loss, logs = seg, {}
        prob = logits.float().sigmoid()
        if c.lambda_adv > 0:
            adv = generator_loss(self.disc, prob, image, dev, c.amp, c.amp_dtype)
            loss = seg + c.lambda_adv * adv
            logs["adv"] = adv.detach()
        optimizer_step(loss, self.opt_s, self.scaler_s, self.student.parameters(), c.clip_grad)
        if c.lambda_adv > 0:
            logs["d"] = discriminator_step(self.disc, self.opt_d, self.scaler_d, real, prob, image, c.d_loss_weight,
                                           c.clip_grad, dev, c.amp, c.amp_dtype)
        ema_update(self.teacher, unwrap(self.student), c.ema)
        return {"loss": loss.detach(), "seg": seg.detach(), **logs}

    def target_config(self) -> TargetConfig:
        c = self.config
        # the teacher's view at --size and its mirror
        return TargetConfig(scales=(1.0,), flip=True, temporal=tuple(c.temporal), lo=c.confidence[0],
                            hi=c.confidence[1], motion_veto=c.motion_veto)

    def make_targets(self, indices: list[int]) -> bool:
        """The teacher's targets for these frames (one video), kept for the pass, for the frames
        whose labels pass ``--min_cover``. Returns False, with a warning, when no frame does:
        labels of one side only teach the student to call every pixel that side (a weak teacher
        never below ``--confidence`` LO made a student that filled the frame), so such a video
        is not tuned."""
        c = self.config
        prob, labels = build_targets(self.teacher, self.data, indices, c.size, self.target_config(), self.info.device,
                                     c.batch_size, c.workers, c.amp, c.amp_dtype, self.flow_cache)
        fg, bg = label_cover(prob, labels)
        usable = (fg > 0) & (bg > 0) & (fg >= c.min_cover) & (bg >= c.min_cover)
        vid = self.data.videos[self.data.items[indices[0]][0]]
        if not usable.any():
            _log.warning("%s/%s: no frame has object and background labels covering --min_cover %.2f of their "
                         "sides (best cover: object %.2f, background %.2f; the teacher's probabilities span "
                         "%.3f-%.3f, --confidence %.2f %.2f); this pass does not tune it (masks from the offline "
                         "model, or from the previous pass)",
                         vid.dataset, vid.name, c.min_cover, float(fg.max()), float(bg.max()), float(prob.min()),
                         float(prob.max()), *c.confidence)
            return False
        if not usable.all():
            _log.info("%s/%s: %d of %d frames below --min_cover %.2f are not learnt from", vid.dataset, vid.name,
                      int((~usable).sum()), len(indices), c.min_cover)
        weight = self._band_weight(prob, vid)
        self.targets.update({i: (p.half(), lab, weight) for i, p, lab, ok in zip(indices, prob, labels,
                                                                                  usable.tolist()) if ok})
        return True

    def _band_weight(self, prob: torch.Tensor, vid) -> float:
        """This video's ``--band_weight``: the option's, or with ``auto`` one read from how much of
        the video the teacher is unsure of (no labels involved)."""
        c = self.config
        if c.band_weight != "auto":
            return float(c.band_weight)
        share = band_share(prob, *c.confidence)
        weight = auto_band_weight(share, c.band_share)
        _log.info("%s/%s: %.1f%% of the pixels between the --confidence thresholds: band weight %.2f "
                  "(--band_weight auto, --band_share %.2f %.2f)", vid.dataset, vid.name, 100 * share, weight,
                  *c.band_share)
        return weight

    def step_cached(self, batch: dict) -> dict[str, torch.Tensor]:
        """One tuning step against the cached hard labels (ignored pixels give no loss)."""
        c, dev = self.config, self.info.device
        keep = [k for k, i in enumerate(batch["index"]) if i in self.targets]  # transductive: videos not tuned
        if not keep:
            return {"loss": torch.zeros(())}
        image, flow = batch["image"][keep].to(dev), batch["flow"][keep].to(dev)
        prob_t = torch.stack([self.targets[batch["index"][k]][0] for k in keep]).float().to(dev)
        labels = torch.stack([self.targets[batch["index"][k]][1] for k in keep]).to(dev)
        with autocast(dev, c.amp, c.amp_dtype):
            logits = self.student(image, flow)["logits"]
        weights = torch.tensor([self.targets[batch["index"][k]][2] for k in keep])  # per video (transductive)
        band = None  # the pixels between the thresholds (not those the motion veto unlabelled)
        if bool((weights > 0).any()):
            band = (labels == IGNORE) & in_band(prob_t, *c.confidence)
        seg = masked_seg_loss(logits, labels, iou_weight=c.iou_weight, soft=prob_t, band=band,
                              band_weight=weights.to(dev))
        return self._update(seg, logits, prob_t, image)

    # modes ---------------------------------------------------------------------------------
    def _loader(self, indices: list[int], shuffle_seed: int | None) -> DataLoader:
        if shuffle_seed is not None:
            perm = torch.randperm(len(indices), generator=torch.Generator().manual_seed(shuffle_seed)).tolist()
            indices = [indices[i] for i in perm]
        return DataLoader(Indexed(self.data, indices), self.config.batch_size, shuffle=False,
                          num_workers=self.config.workers, collate_fn=collate_frames)

    def tune_video(self, key: tuple[str, str], indices: list[int], seed: int) -> dict:
        """Tune on one video (per_video mode) and write its masks; returns timing."""
        c = self.config
        self._fresh(seed)
        t0 = time.perf_counter()
        desc = f"{key[1]}"
        passes = 0  # passes that learnt something (0: the guard left the video as it was)
        for epoch in range(c.epochs):
            step = self.step
            if c.targets == "cached":  # this pass's targets, from the teacher as it is now
                self.targets = {}
                if not self.make_targets(indices):
                    break
                step = self.step_cached
            _, self.global_step = run_epoch(self._loader(indices, seed * 1000 + epoch), step, self._local,
                                            epoch, self.tb, self.global_step, desc, total=None)
            passes += 1
        t_tune = time.perf_counter() - t0
        t1 = time.perf_counter()
        self._write(indices)
        t_pred = time.perf_counter() - t1
        return {"frames": len(indices), "tune_s": t_tune, "predict_s": t_pred, "passes": passes}

    def _write(self, indices: list[int]) -> int:
        """Masks of these frames from the predicting network. With ``--write_temporal``, ``indices``
        are one whole video in temporal order (as test.py --temporal)."""
        c, dev = self.config, self.info.device
        if c.write_temporal:
            return write_fused_video(self.predictor(), self.data, indices, self.writer, c.size, c.scales, c.flip,
                                     c.write_temporal, dev, c.batch_size, c.workers, c.amp, c.amp_dtype,
                                     self.flow_cache)
        if tuple(c.scales) == (1.0,):  # test.py's path, so that 0 epochs give test.py's masks bit for bit
            return write_predictions(self.predictor(), self._loader(indices, None), self.writer, dev, c.flip, c.amp,
                                     c.amp_dtype)
        return write_view_predictions(self.predictor(), self.data, indices, self.writer, dev, c.size, c.scales, c.flip,
                                      c.batch_size, c.workers, c.amp, c.amp_dtype)

    @property
    def _local(self) -> DistInfo:
        """Per-video work is local to a rank: no cross-rank reductions inside it (world size 1),
        but the real rank, so that only rank 0 draws progress bars."""
        return DistInfo(self.info.rank, 1, self.info.local_rank, self.info.device)

    def run(self) -> dict:
        """Tune and write masks for the whole test set; returns timing totals. Rank 0 appends this
        run's log to ``<output_dir>/log.txt`` meanwhile (with any records the caller buffered)."""
        with log_to_file(self.run_dir, enabled=self.info.is_main, records=self._startup):
            try:
                return self._run()
            finally:
                self.tb.close()

    def _run(self) -> dict:
        c, info = self.config, self.info
        seed_everything(c.seed, info.rank)
        names = ["/".join(k) for k in sorted(self.data.video_items())]
        with in_progress([self.writer.save_dir, self.writer.prob_dir], "online_finetuning.py", names, info.is_main):
            timing = self._tune_all()
        n = max(timing["frames"], 1)
        timing |= {"tune_s_per_frame": timing["tune_s"] / n, "predict_s_per_frame": timing["predict_s"] / n}
        if info.is_main:
            atomic_write(self.run_dir / "timing.json", lambda tmp: tmp.write_text(json.dumps(timing, indent=1)))
            _log.info("online %s: %d frames, tuning %.3f s/frame, inference %.3f s/frame; masks in %s", c.mode,
                      timing["frames"], timing["tune_s_per_frame"], timing["predict_s_per_frame"],
                      self.writer.save_dir)
            if c.mode != "transductive":
                _log.info(self._summary(timing))
        return timing

    def _tune_all(self) -> dict:
        """Tune and write every video of this run (per the mode); returns timing totals."""
        c, info = self.config, self.info
        if c.mode == "transductive":
            timing = self._run_transductive()
        else:
            # Whole videos per rank: no cross-rank sync needed while tuning.
            roots = save_roots(self.writer.save_dir, self.writer.prob_dir)
            todo, reused, stale = plan_videos(self.run_dir, c, self.weights_id, roots, rank_videos(self.data, info),
                                              self.data.videos)
            if c.resume:  # each reason once for the whole run, not once per rank
                parts = all_gather_objects(stale)
                if info.is_main:
                    for line in resume_messages([s for p in parts for s in p]):
                        _log.info("online --resume: %s", line)
            timing = {"frames": 0, "tune_s": 0.0, "predict_s": 0.0}
            for vt in reused:  # the totals cover the whole set, reused videos included
                for k in timing:
                    timing[k] += vt.get(k, 0)
            bar = tqdm(todo, desc=f"online {c.mode}", disable=not info.is_main, dynamic_ncols=True)
            untouched = 0  # videos of this run that the --min_cover guard left as they were
            for v_idx, key, indices, vkey in bar:
                vt = self.tune_video(key, indices, c.seed + v_idx)
                names = [self.writer.relative(*key, self.data.items[i][1]) for i in indices]
                write_record(record_path(self.run_dir, *key), vkey, written_files(roots, names), vt)
                for k in timing:
                    timing[k] += vt[k]
                untouched += int(vt["passes"] == 0 and c.epochs > 0)
            # --epochs 0 tunes nothing: every video's masks are the offline model's, none was left by the guard
            timing |= {"videos_tuned": len(todo) - untouched if c.epochs > 0 else 0, "videos_untouched": untouched,
                       "videos_reused": len(reused), "videos_written": len(todo)}
            parts = all_gather_objects(timing)  # also waits for every rank's masks
            timing = {k: sum(p[k] for p in parts) for k in timing}
        return timing

    def _summary(self, timing: dict) -> str:
        """The closing line of a per_video run: what was tuned, what was reused."""
        tuned, untouched, reused = timing["videos_tuned"], timing["videos_untouched"], timing["videos_reused"]
        where = f"masks in {self.writer.save_dir}, records in {self.run_dir / 'done'}"
        if tuned == untouched == 0 and reused:
            return (f"online --resume: all {reused} video(s) were already done with these weights, options, inputs "
                    f"and save folder; nothing re-tuned ({where})")
        if self.config.epochs == 0:
            return (f"online {self.config.mode}: --epochs 0, nothing tuned: the offline model's masks of "
                    f"{timing['videos_written']} video(s) written, reused {reused} finished earlier ({where})")
        left = (f", left {untouched} untuned (no frame with confident labels of both kinds, --min_cover: the "
                f"offline model's masks)" if untouched else "")
        return (f"online {self.config.mode}: tuned {tuned} video(s){left}, reused {reused} finished earlier "
                f"({where})")

    def _run_transductive(self) -> dict:
        c, info = self.config, self.info
        self._fresh(c.seed)
        state_path = self.run_dir / "transductive_last.pth"
        key = transductive_key(c, self.weights_id, self.data.video_items(), self.data.videos, info.world_size)
        start = 0
        if c.resume and state_path.is_file():
            ck = load_checkpoint(state_path)
            reasons = state_mismatches(ck, key)
            for reason, detail in reasons:
                _log.info("online --resume: %s%s since %s: tuning the %d videos from the offline weights again",
                          reason, f" ({detail})" if detail else "", state_path, len(key["videos"]))
            if not reasons:
                unwrap(self.student).load_state_dict(ck["model"])
                self.teacher.load_state_dict(ck["teacher"])
                unwrap(self.disc).load_state_dict(ck["discriminator"])
                self.opt_s.load_state_dict(ck["opt_s"])
                self.opt_d.load_state_dict(ck["opt_d"])
                start = ck["epoch"] + 1
                _log.info("online --resume: %s matches the weights, options and inputs; %s", state_path,
                          f"continuing at epoch {start + 1} of {c.epochs}" if start < c.epochs else
                          "tuning was finished: nothing to tune, writing the masks from it")
        sampler = DistributedSampler(self.data, info.world_size, info.rank, shuffle=c.transductive_order == "shuffled",
                                     seed=c.seed, drop_last=True)
        loader = DataLoader(Indexed(self.data, range(len(self.data))), c.batch_size, sampler=sampler,
                            num_workers=c.workers, collate_fn=collate_frames)
        t0 = time.perf_counter()
        for epoch in range(start, c.epochs):
            sampler.set_epoch(epoch)
            step = self.step
            if c.targets == "cached":  # every video's targets from the teacher as it is at this pass's start
                self.targets = {}
                for indices in self.data.video_items().values():
                    self.make_targets(indices)
                if not self.targets:
                    break
                step = self.step_cached
            _, self.global_step = run_epoch(loader, step, info, epoch, self.tb, self.global_step, "transductive")
            if info.is_main:
                save_checkpoint(state_path, {"model": unwrap(self.student).state_dict(),
                                             "teacher": self.teacher.state_dict(),
                                             "discriminator": unwrap(self.disc).state_dict(), "epoch": epoch,
                                             "opt_s": self.opt_s.state_dict(), "opt_d": self.opt_d.state_dict(),
                                             "resume_key": key})
            barrier()
        t_tune = time.perf_counter() - t0
        t1 = time.perf_counter()
        if c.write_temporal:  # each frame's fusion needs its neighbours: whole videos, one at a time
            n = sum(self._write(indices) for _, _, indices in rank_videos(self.data, info))
        else:
            n = self._write(shard_indices(len(self.data), info))
        parts = all_gather_objects({"frames": n, "tune_s": t_tune, "predict_s": time.perf_counter() - t1})
        return {"frames": sum(p["frames"] for p in parts), "tune_s": max(p["tune_s"] for p in parts),
                "predict_s": max(p["predict_s"] for p in parts)}
