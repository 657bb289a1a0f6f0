#!/usr/bin/env bash
# The video tool's speed/J table in one run: every bundle on the same ten held-out 480p DAVIS
# videos (fold 1 of benchmarks/davis_real.py: bear ... swing, 728 frames), with the fold-1 model.
#
#   before_quality  the defaults before --quality (fast + --flow_jpeg)   fast            --quality fast
#   torch_fast      PyTorch float at fast's size (the J reference)       accurate        --quality accurate
#   int8_320x576    fast + --runtime int8 --flow_size 320x576            dis_ultrafast   fast + --dis_preset ultrafast
#   dis_fast        fast + --dis_preset fast (medium is fast's own)      flow_network    fast + --flow_size network
#   openvino_fast   fast + --runtime openvino                            openvino_int8_320x576   int8_320x576 in OpenVINO
# plus: fast and int8_320x576 as one call on the ten videos vs ten calls; test.py --flip
# --temporal 1 at 320x576 on davis_real.py's flow cache beside accurate; the online row; each
# OpenVINO configuration beside its ONNX Runtime one (frames/s, J, mask IoU; needs
# requirements-openvino.txt, else those two fail, named). Each configuration at its own size (no
# --size): the checkpoint's training size, accurate 320x576. The targets it can check are printed
# at the end; every figure goes to $JSON.
#
# How long: 32 minutes alone on the 2-core development CPU for the eight configurations before the
# OpenVINO ones (one run, 728 frames: about 20 for them, accurate alone 7; 3 for the
# one-call/ten-calls comparison; 5 for test.py's reference pass), plus about 4 for the two
# OpenVINO ones (estimated at fast's rates, not timed). Run it alone: any other job on the
# machine voids the timings (the script warns when the load average is above 0.5).
#
#   benchmarks/segment_speed.sh                  # the run
#   benchmarks/segment_speed.sh --plan           # what it would run, with every resolved option
#   WEIGHTS=other.pth benchmarks/segment_speed.sh --repeat 1     # extra options go to segment_speed.py
set -euo pipefail
cd "$(dirname "$0")/.."
DR=${DR:-/work/dr}                                     # benchmarks/davis_real.py --out_dir
# The fold-1 model of docs/video_tool.md's table (writes holdout_stab_s0):
#   python benchmarks/davis_real.py --out_dir "$DR" --eval holdout --fold 1 --name holdout_stab --seed 0 --online '' \
#       --train_args='--no_decay_norm_bias --warmup_steps 30 --ema_decay 0.999'
WEIGHTS=${WEIGHTS:-$DR/holdout_stab_s0/train/checkpoint_last.pth}
DAVIS=${DAVIS:-../shared/data/DAVIS}
JSON=${JSON:-benchmarks/results/segment_speed_fold1.json}
if [ ! -f "$WEIGHTS" ]; then
    echo "error: no checkpoint at $WEIGHTS; train it with: python benchmarks/davis_real.py --out_dir $DR --eval holdout --fold 1 --name holdout_stab --online '' --train_args='--no_decay_norm_bias --warmup_steps 30 --ema_decay 0.999'" >&2
    echo "       or name another fold-1 model with WEIGHTS=..." >&2
    exit 1
fi
python benchmarks/segment_speed.py --weights "$WEIGHTS" --davis "$DAVIS" --fold 1 \
    --configs before_quality fast torch_fast accurate int8_320x576 dis_ultrafast dis_fast flow_network openvino_fast openvino_int8_320x576 \
    --reference torch_fast --repeat 2 --slow_repeat 1 --batch_configs fast int8_320x576 \
    --test_py_data "$DR/data" --online_frames 20 --json "$JSON" "$@"
