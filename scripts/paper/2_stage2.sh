#!/usr/bin/env bash
# Stage 2: finetune on DAVIS-2016 train alone (unlabeled Youtube-objects still aligned), 25 epochs.
# Writes $RUNS/stage2 only (stage 1's checkpoint is read, never written); like 1_stage1.sh, safe to
# rerun or to kill (--resume auto).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/paper/env.sh
$LAUNCH unlabeled_train.py --epochs 25 --labeled_datasets DAVIS-2016 --data_dir "$DATA_DIR" \
    --model_scale "$MODEL_SCALE" --finetune "$RUNS/stage1/checkpoint_last.pth" --sync-bn \
    --output_dir "$RUNS/stage2" --resume auto "$@"
