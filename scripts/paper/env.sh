# Paths and launch settings shared by the paper scripts; edit these, or export them first.
DATA_DIR=${DATA_DIR:-data}                            # <dataset>/<split>/{images,flows,labels}/<video>/
PRETRAINED=${PRETRAINED:-pretrained/mobilevit_s.pth}  # timm ImageNet weights (see README)
MODEL_SCALE=${MODEL_SCALE:-s}
RUNS=${RUNS:-runs}
OUT=${OUT:-outputs}
NGPU=${NGPU:-2}
LAUNCH=${LAUNCH:-"torchrun --standalone --nproc_per_node=${NGPU}"}
# Test sets, as space-separated names of <DATA_DIR> folders. UVOS_SETS are scored with J (and F
# on DAVIS-2016); VSOD_SETS are the salient-object sets made by scripts/prepare_data.py --dataset
# DAVSOD (its Easy-35 test subset) / ViSal / MCL, for the saliency metrics (S-measure, max F, MAE);
# VSOD_SETS="" skips them. SALIENCY_SETS are the rows of the saliency table.
UVOS_SETS=${UVOS_SETS-"DAVIS-2016 FBMS Youtube-objects"}
VSOD_SETS=${VSOD_SETS-"DAVSOD ViSal"}
TEST_SETS=${TEST_SETS-"$UVOS_SETS $VSOD_SETS"}              # segmented by 3_test.sh and 4_online.sh
SALIENCY_SETS=${SALIENCY_SETS-"DAVIS-2016 FBMS $VSOD_SETS"}
