#!/usr/bin/env bash
# The whole paper pipeline: stage 1, stage 2, offline test, online tuning, evaluation.
set -euo pipefail
cd "$(dirname "$0")"
for s in 1_stage1.sh 2_stage2.sh 3_test.sh 4_online.sh 5_evaluate.sh; do bash "$s"; done
