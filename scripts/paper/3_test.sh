#!/usr/bin/env bash
# Offline masks (no online tuning) for the three benchmarks, with probability maps.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/paper/env.sh
$LAUNCH test.py --weights "$RUNS/stage2/checkpoint_last.pth" --data_dir "$DATA_DIR" \
    --test_datasets DAVIS-2016 FBMS Youtube-objects --save_dir "$OUT/offline" --save_prob "$@"
