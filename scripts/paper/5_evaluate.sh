#!/usr/bin/env bash
# DAVIS-2016 J/F, FBMS and Youtube-objects J, and the saliency metrics (S-measure, max F, MAE, ...)
# of SALIENCY_SETS (env.sh; DAVIS-2016, FBMS, DAVSOD and ViSal by default), for the offline and
# online masks; ends with the saliency table (also written to $OUT/saliency_table.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/paper/env.sh
# shellcheck disable=SC2086  # the *_SETS variables are lists of names
for run in offline online; do
  python scripts/evaluate.py --pred_dir "$OUT/$run" --prob_dir "$OUT/${run}_prob" --data_dir "$DATA_DIR" \
      --datasets $TEST_SETS --saliency $SALIENCY_SETS --out_dir "$OUT/eval_$run" "$@"
done
# shellcheck disable=SC2086
python scripts/paper/saliency_table.py --datasets $SALIENCY_SETS --out "$OUT/saliency_table.md" \
    --results offline="$OUT/eval_offline/results.json" online="$OUT/eval_online/results.json"
