#!/usr/bin/env bash
# Stage 1: YouTube-VOS-2018 (every 10th annotated frame) + DAVIS-2016 train labeled,
# Youtube-objects unlabeled, feature-level adversarial alignment. 30 epochs, 2 GPUs, SyncBN.
# Safe to rerun or to kill: --resume auto continues from $RUNS/stage1/checkpoint_last.pth and a
# finished run only reports that it is finished. To train it again from scratch, set another RUNS
# (unlabeled_train.py refuses --overwrite together with --resume).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/paper/env.sh
$LAUNCH unlabeled_train.py --epochs 30 --data_dir "$DATA_DIR" --pretrained "$PRETRAINED" \
    --model_scale "$MODEL_SCALE" --sync-bn --output_dir "$RUNS/stage1" --resume auto "$@"
