#!/usr/bin/env bash
# Regenerate the diagnostics figures embedded in the documentation site (docs/figures/*.png).
#
#   bash docs/figures/make_figures.sh            # about 2 minutes on one CPU core, no download
#
# Three seeded runs on the built-in synthetic sets (the configs in configs/synthetic/), each
# followed by `onebit analyze`, which writes every diagnostics PNG into RUN/analysis/; the ones
# the site shows are copied here under the names the pages use. Runs go to runs/docs/ (ignored by git).
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=runs/docs
figs=docs/figures
py=${PYTHON:-python}
mkdir -p "$runs" "$figs"

train() {  # train NAME CONFIG [--set ...]: a fresh run, then its diagnostics plots
  local name=$1 config=$2
  shift 2
  rm -rf "${runs:?}/$name"
  echo "+ onebit train $config --out $runs/$name $*"
  "$py" -m onebit train "$config" --out "$runs/$name" --set log.progress=false "$@"
  echo "+ onebit analyze $runs/$name"
  "$py" -m onebit analyze "$runs/$name" > /dev/null
}

# BiPointNet (EMA-max + LSR) vs BNN with plain max pooling: entropy of the pooled feature
train bipointnet configs/synthetic/pointnet_bipointnet.yaml
train bnn_max configs/synthetic/pointnet_bipointnet.yaml --set binarize=bnn
# DAB-Net FBin Sketch-A-Net: K/n, alpha, beta per layer and per-filter histograms
train dab_fbin configs/synthetic/sketch_dab_fbin.yaml --set epochs=8

cp "$runs/bipointnet/analysis/entropy.png"           "$figs/bipointnet_entropy.png"
cp "$runs/bnn_max/analysis/entropy.png"              "$figs/bnn_max_entropy.png"
cp "$runs/bipointnet/analysis/scale_distortion.png"  "$figs/bipointnet_scale_distortion.png"
cp "$runs/bnn_max/analysis/scale_distortion.png"     "$figs/bnn_max_scale_distortion.png"
cp "$runs/bipointnet/analysis/accuracy.png"          "$figs/bipointnet_accuracy.png"
cp "$runs/dab_fbin/analysis/dab_k.png"               "$figs/dab_fbin_k.png"
cp "$runs/dab_fbin/analysis/dab_alpha_beta.png"      "$figs/dab_fbin_alpha_beta.png"
cp "$runs/dab_fbin/analysis/dab_filter_hist.png"     "$figs/dab_fbin_filter_hist.png"
echo "figures written to $figs/"
