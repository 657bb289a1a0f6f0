# Paths and launch settings shared by the paper scripts; edit these, or export them first.
DATA_DIR=${DATA_DIR:-data}                            # <dataset>/<split>/{images,flows,labels}/<video>/
PRETRAINED=${PRETRAINED:-pretrained/mobilevit_s.pth}  # timm ImageNet weights (see README)
MODEL_SCALE=${MODEL_SCALE:-s}
RUNS=${RUNS:-runs}
OUT=${OUT:-outputs}
NGPU=${NGPU:-2}
LAUNCH=${LAUNCH:-"torchrun --standalone --nproc_per_node=${NGPU}"}
