"""Validation J during training: every annotated frame counted exactly once over all ranks."""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from datasets import FrameDataset
from engine.inference import frame_loader, predict_probs, to_original_size
from evaluation import jaccard
from utils.distributed import DistInfo, all_gather_objects


@torch.no_grad()
def validate(model: torch.nn.Module, dataset: FrameDataset, info: DistInfo, batch_size: int = 4, workers: int = 2,
             amp: bool = False, amp_dtype: str = "bf16", n_samples: int = 4) -> tuple[dict[str, float], list]:
    """Mean J per sequence, then over sequences (the project's J metric), and a few samples.

    Frames are sharded across ranks without padding (DistributedSampler would duplicate
    frames to even out the shards and bias the mean) and the per-frame scores gathered.
    Returns ``({"J": ..., "frames": n, "skipped": [(file, error), ...]}, samples)``; samples
    are (image, gt, prob) arrays. ``skipped`` (all ranks) lists the frames a
    ``skip_bad`` dataset could not read; they are left out of J.
    """
    was_training = model.training
    model.eval()
    labeled = [i for i, (v, f) in enumerate(dataset.items) if f in dataset.videos[v].label_paths]
    scores, samples, skipped = [], [], []
    for batch in frame_loader(dataset, info, batch_size, workers, indices=labeled):
        skipped += batch.get("skipped", [])
        if "image" not in batch:  # every frame of this batch was unreadable (and skipped)
            continue
        prob = predict_probs(model, batch["image"].to(info.device), batch["flow"].to(info.device), amp=amp,
                             amp_dtype=amp_dtype)
        for p, gt, ds, vid, fr, img in zip(to_original_size(prob, batch["orig_size"]), batch["mask"],
                                           batch["dataset"], batch["video"], batch["frame"], batch["image"]):
            gt = gt[0].numpy() > 0.5
            scores.append((ds, vid, fr, float(jaccard(p >= 0.5, gt))))
            if len(samples) < n_samples and info.is_main:
                samples.append((img.numpy(), gt, p))
    model.train(was_training)
    per_seq: dict[tuple[str, str], list[float]] = defaultdict(list)
    all_skipped = []
    for part, part_skipped in all_gather_objects((scores, skipped)):
        all_skipped += part_skipped
        for ds, vid, _fr, j in part:
            per_seq[(ds, vid)].append(j)
    n = sum(len(v) for v in per_seq.values())
    return {"J": float(np.mean([np.mean(v) for v in per_seq.values()])) if per_seq else float("nan"),
            "frames": n, "skipped": all_skipped}, samples
