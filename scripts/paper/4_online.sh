#!/usr/bin/env bash
# Online adversarial self-tuning, per video (videos are split across the GPUs); resumable.
# --resume reuses a video only if its record in $RUNS/online/done names the same weights (sha1 of
# the checkpoint), mask-affecting options, input frames and save folders, and its masks are still
# there; so rerunning this after retraining stage 2 re-tunes every video (the log says why), and a
# rerun that finds everything done says so.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/paper/env.sh
# shellcheck disable=SC2086  # TEST_SETS (env.sh) is a list of names
$LAUNCH online_finetuning.py --weight "$RUNS/stage2/checkpoint_last.pth" --data_dir "$DATA_DIR" \
    --test_datasets $TEST_SETS --save_dir "$OUT/online" --save_prob \
    --output_dir "$RUNS/online" --resume "$@"
