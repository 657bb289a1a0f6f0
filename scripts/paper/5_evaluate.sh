#!/usr/bin/env bash
# DAVIS-2016 J/F, FBMS and Youtube-objects J, saliency metrics, offline and online masks.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/paper/env.sh
for run in offline online; do
  python scripts/evaluate.py --pred_dir "$OUT/$run" --prob_dir "$OUT/${run}_prob" --data_dir "$DATA_DIR" \
      --datasets DAVIS-2016 FBMS Youtube-objects --saliency DAVIS-2016 FBMS --out_dir "$OUT/eval_$run" "$@"
done
