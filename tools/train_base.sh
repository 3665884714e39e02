#!/usr/bin/env bash
# The shared base model's recipe, end to end, resumable at every stage (rerun it after a kill).
#
#   tools/train_base.sh [WORK] [STEPS_64] [STEPS_128]
#
# 1. Pick the base's concepts as the paper does (K-means over concepts' mean edit embeddings);
#    winter, watercolor, silver_sculpture and clay_figure stay held out for the benchmark.
# 2. 400 pairs per concept from the photo pool (BSDS500 train/val, faces 0001-1245, photographic
#    wallpapers from Debian packages where installed, the packaged photos): `e2gan photo-pool`.
# 3. Progressive resolution: 64 px (cheap, learns colour and layout), then 128 px from those
#    weights with a linear LR decay. EMA weights are what is saved.
# Photos come from $E2GAN_PHOTO_DATA (default ../shared/data). Output: WORK/base-128.
# $E2GAN_BASE_LAYOUT (JSON) overrides the generator layout, for layout ablations at the same recipe,
# e.g. '{"upsampling": "conv_resize", "skip_connections": true, "residual_output": true}' (the
# previous base's; see e2gan/models/generator.py and the base's model card, "Layout: why
# PixelNorm after the transformer").
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-runs/base}
steps_64=${2:-5000}   # batch 8 at 64 px
steps_128=${3:-4000}  # batch 4 at 128 px
data=${E2GAN_PHOTO_DATA:-../shared/data}
e2gan=.venv/bin/e2gan
layout=${E2GAN_BASE_LAYOUT:-'{"upsampling": "conv_resize", "skip_connections": true, "residual_output": true, "downsample_padding": "reflect", "noise_channels": 0, "norm_after_transformer": "pixel"}'}
mkdir -p "$work/data"

[ -f "$work/selection.json" ] || $e2gan select-concepts --k 24 --source "pool:all:$data" --count 48 \
    --size 128 --hold-out winter,watercolor,silver_sculpture,clay_figure --out "$work/selection.json" --quiet --json > /dev/null
concepts=$(python3 -c "import json,sys; print(' '.join(json.load(open(sys.argv[1]))['chosen']))" "$work/selection.json")

i=0
for concept in $concepts; do
  i=$((i + 1))
  $e2gan pairs --source "pool:all:$data" --count 400 --size 128 --concept "$concept" --seed $((i * 1000)) \
      --test-fraction 0.05 --out "$work/data/$concept" --quiet --json > /dev/null
done
datasets=$(for concept in $concepts; do printf '%s ' "$work/data/$concept"; done)

# Stage 1: 64 px, constant LR. Stage 2: 128 px from stage 1's weights, LR flat then down to 0.
# A stage is done when its folder has a model and no resumable state left.
finished() { [ -f "$1/config.json" ] && [ ! -d "$1/training_state" ]; }
finished "$work/base-64" || \
  $e2gan train-base --dataset $datasets --out "$work/base-64" --generator-config "$layout" \
      --size 64 --batch-size 8 --steps "$steps_64" --ema-decay 0.999 --checkpoint-every 500 \
      --json > "$work/base-64.json" 2> "$work/base-64.log"
finished "$work/base-128" || \
  $e2gan train-base --dataset $datasets --out "$work/base-128" --init-from "$work/base-64" \
      --generator-config "$layout" --size 128 --batch-size 4 --steps "$steps_128" \
      --schedule linear --ema-decay 0.999 --checkpoint-every 250 --json > "$work/base-128.json" 2> "$work/base-128.log"
