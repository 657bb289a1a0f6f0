#!/usr/bin/env bash
# Online adversarial self-tuning, per video (videos are split across the GPUs); resumable.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/paper/env.sh
$LAUNCH online_finetuning.py --weight "$RUNS/stage2/checkpoint_last.pth" --data_dir "$DATA_DIR" \
    --test_datasets DAVIS-2016 FBMS Youtube-objects --save_dir "$OUT/online" --save_prob \
    --output_dir "$RUNS/online" --resume "$@"
