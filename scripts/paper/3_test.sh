#!/usr/bin/env bash
# Offline masks (no online tuning) for the UVOS and VSOD test sets (TEST_SETS of env.sh), with
# probability maps (<save_dir>_prob) for the saliency metrics.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/paper/env.sh
# shellcheck disable=SC2086  # TEST_SETS is a list of names
$LAUNCH test.py --weights "$RUNS/stage2/checkpoint_last.pth" --data_dir "$DATA_DIR" \
    --test_datasets $TEST_SETS --save_dir "$OUT/offline" --save_prob "$@"
