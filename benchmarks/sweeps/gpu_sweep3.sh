#!/usr/bin/env bash
# GPU sweep 3 (G2P): how much does more training buy? The G2P recipe for 1x and 3x
# the steps it makes in 58 minutes on the 2-core CPU (7,900), and the two larger variants for
# the steps they would make in 3 hours there (wide 0.59x, dec2 0.68x base's CPU step rate,
# logs/cpu-rate-g2p). Cosine over steps, dev WER (greedy, 3,000 words) every 1,000 steps.
# Run from the repository root on a machine with a CUDA GPU, OUT set to a results folder.
# CMUDICT: the cmudict_split folder (default ../shared/data/cmudict_split; on a machine
# without ../shared, copy it into the tree, e.g. logs/gpu/cmudict_split, and point CMUDICT there).
set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
CMUDICT=${CMUDICT:-../shared/data/cmudict_split}; W=/tmp/g2p3
nvidia-smi -L
timeout ${LIMIT:-560} python3 benchmarks/ab/sweep.py configs/g2p_cmudict.yaml --out $W --parallel 4 \
  --device cuda --set train.threads=1 --set train.max_minutes=${MINUTES:-8.3} \
  --set train.lr_horizon=steps --set train.patience=1000 --set train.valid_every=1000 \
  --set train.keep_last=0 --set data.corpus_dir=$CMUDICT \
  "base1x:train.max_steps=7900" "base3x:train.max_steps=23700" \
  "wide3x:model.hidden_size=512;model.emb_size=256;train.max_steps=13950" \
  "dec2_3x:model.dec_layers=2;train.max_steps=16200" > $OUT/g2p3.out 2>&1
cp $W/sweep.json $OUT/g2p3-sweep.json; cat $OUT/g2p3.out
