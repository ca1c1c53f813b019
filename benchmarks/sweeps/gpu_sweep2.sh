#!/usr/bin/env bash
# GPU sweep 2: addition variants, each trained for the number of steps its recipe makes in
# 9.5 minutes on the 2-core CPU (measured there), cosine over those steps.
# Run from the repository root on a machine with a CUDA GPU, OUT set to a results folder.
set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
S=benchmarks/sweeps; W=/tmp/add2
timeout 330 python3 benchmarks/ab/sweep.py $S/addition_2600.yaml --out $W --parallel 8 --device cuda \
  --set train.threads=1 --set train.max_minutes=5 --set train.patience=1000 --set train.valid_every=500 \
  "base:train.max_steps=2830" "bt3:train.batch_tokens=3000;train.max_steps=4790" \
  "e512bt3:model.enc_hidden_size=512;train.batch_tokens=3000;train.max_steps=3570" \
  "enc2bt3:model.enc_layers=2;train.batch_tokens=3000;train.max_steps=3930" \
  "bt2:train.batch_tokens=2000;train.max_steps=7350" \
  "e512bt2:model.enc_hidden_size=512;train.batch_tokens=2000;train.max_steps=5100" \
  "enc2bt2:model.enc_layers=2;train.batch_tokens=2000;train.max_steps=5700" \
  "e512:model.enc_hidden_size=512;train.max_steps=1520" > $OUT/add2.out 2>&1
cp $W/sweep.json $OUT/add2-sweep.json; cat $OUT/add2.out
