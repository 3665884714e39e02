#!/usr/bin/env bash
# The shared base model's recipe, end to end, resumable at every stage (rerun it after a kill).
#
#   tools/train_base.sh [WORK] [STEPS_64] [STEPS_128] [STEPS_256]
#
# 1. Pick the base's concepts as the paper does (K-means over concepts' mean edit embeddings):
#    32 of the built-ins, holding out the benchmark's four (winter, watercolor, silver_sculpture,
#    clay_figure) and its eight "looks" (risograph, woodcut, charcoal, pointillism, cross_stitch,
#    pop_art, stained_glass, low_poly); the identity concept ("the same photo") is learnt too.
# 2. 400 pairs per concept from the whole training pool (`e2gan photo-pool`: BSDS500 train/val,
#    faces 0001-1245, the photographic wallpapers of `make base-photos`, the packaged photos; not
#    the studio's held-out built-in photos), made
#    at 256 px by the built-in teacher v2, whose concepts are one look each (pairs that agree).
#    The pool's faces are 128 px: at 256 px they are Lanczos-upscaled crops, soft but consistent
#    (the teacher edits the upscaled crop, so source and edit agree); the lower stages see them
#    at or under their own size.
# 3. Progressive resolution from the same pairs (resized by the loader): 64 px (colour and
#    layout), 128 px, then 256 px (texture at the studio's working size), each from the last's
#    EMA weights, the last two with a linear LR decay. Images seen: 8 x 25,000 + 4 x 50,000 +
#    4 x 40,000 = 560,000, ten times the previous base's 56,000.
# Every stage writes its model when it ends or is stopped (--max-minutes via $E2GAN_STAGE_MINUTES)
# and resumes from its training state when rerun. Between machines, commit the stage's weights in
# fp16 (tools/store_half.py) and start that stage again from them (E2GAN_RESUME_STAGE, below).
# Photos come from $E2GAN_PHOTO_DATA (default ../shared/data). Output: WORK/base-256.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-runs/base-v3}
steps_64=${2:-25000}   # batch 8 at 64 px
steps_128=${3:-50000}  # batch 4 at 128 px
steps_256=${4:-40000}  # batch 4 at 256 px
data=${E2GAN_PHOTO_DATA:-../shared/data}
minutes=${E2GAN_STAGE_MINUTES:+--max-minutes $E2GAN_STAGE_MINUTES}
e2gan=.venv/bin/e2gan
layout=${E2GAN_BASE_LAYOUT:-'{"upsampling": "conv_resize", "skip_connections": true, "residual_output": true, "downsample_padding": "reflect", "noise_channels": 0, "norm_after_transformer": "pixel"}'}
held_out=winter,watercolor,silver_sculpture,clay_figure,risograph,woodcut,charcoal,pointillism,cross_stitch,pop_art,stained_glass,low_poly
mkdir -p "$work/data"

[ -f "$work/selection.json" ] || $e2gan select-concepts --k 32 --source "pool:all:$data" --count 48 \
    --size 128 --hold-out "$held_out" --out "$work/selection.json" --quiet --json > /dev/null
concepts=$(python3 -c "import json,sys; print(' '.join(json.load(open(sys.argv[1]))['chosen']))" "$work/selection.json")

# make_pairs FOLDER: 400 pairs per concept from the pool (an existing folder is completed, not remade).
make_pairs() {
  local i=0
  for concept in $concepts; do
    i=$((i + 1))
    $e2gan pairs --source "pool:all:$data" --count 400 --size 256 --concept "$concept" --seed $((i * 1000)) \
        --test-fraction 0.05 --out "$1/$concept" --quiet --json > /dev/null
  done
}
datasets_in() { for concept in $concepts; do printf '%s ' "$1/$concept"; done; }
# Stage 1 keeps the pairs it began on (WORK/data); stages 2 and 3 train on pairs made from the pool
# as it is now (WORK/data-2), which leaves out the studio's held-out built-in photos and the
# unlicensed stereo motorcycle (`e2gan.data.photo_pool.not_for_training`; the pool held them
# until 2026-12-07, when stage 1 was at step ~8,000).
# A stage is done when its folder has a model and no resumable state left.
finished() { [ -f "$1/config.json" ] && [ ! -d "$1/training_state" ]; }
# On a fresh machine: E2GAN_RESUME_STAGE=128 E2GAN_RESUME_FROM=checkpoints/candidates/base-v3-64
# skips the stages below 128 and starts 128 from the committed weights (fresh optimiser, step 0).
resume_stage=${E2GAN_RESUME_STAGE:-0}
stage() {  # stage SIZE BATCH STEPS SCHEDULE PREVIOUS PAIRS
  local out="$work/base-$1" init=$5
  [ "$1" -lt "$resume_stage" ] && return 0
  finished "$out" && return 0
  if [ "$1" = "$resume_stage" ] && [ ! -d "$out/training_state" ]; then init=${E2GAN_RESUME_FROM:?}; fi
  make_pairs "$6"
  $e2gan train-base --dataset $(datasets_in "$6") --identity --out "$out" ${init:+--init-from "$init"} \
      --generator-config "$layout" --size "$1" --batch-size "$2" --steps "$3" --schedule "$4" \
      --ema-decay 0.999 --checkpoint-every 250 $minutes --json > "$out.json" 2> "$out.log"
  finished "$out"  # stopped by the time limit: the next stage waits for a rerun
}
stage 64 8 "$steps_64" constant "" "$work/data"
stage 128 4 "$steps_128" linear "$work/base-64" "$work/data-2"
stage 256 4 "$steps_256" linear "$work/base-128" "$work/data-2"
