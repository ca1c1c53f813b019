#!/usr/bin/env bash
# GPU recipe sweep: addition and G2P variants side by side on one GPU.
# Run from the repository root on a machine with a CUDA GPU, OUT set to a results folder.
# CMUDICT: the cmudict_split folder (default ../shared/data/cmudict_split; on a machine
# without ../shared, copy it into the tree, e.g. logs/gpu/cmudict_split, and point CMUDICT there).
set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
S=benchmarks/sweeps; CMUDICT=${CMUDICT:-../shared/data/cmudict_split}
nvidia-smi -L
COMMON="--device cuda --set train.threads=1 --set train.max_minutes=${MINUTES:-7} --set train.patience=1000"
timeout 510 python3 benchmarks/ab/sweep.py $S/addition_2600.yaml --out /tmp/sw1/add --parallel 8 $COMMON \
  --set train.max_steps=6000 --set train.valid_every=250 \
  "l256add:" "l256feed:model.input_feeding=true" "l256gen:model.attention=general" \
  "l512add:model.hidden_size=512" "l256enc2:model.enc_layers=2" "l256dec2:model.dec_layers=2" \
  "g256add:model.cell=gru" "l256lr5:train.lr=0.005;train.warmup_steps=200" > $OUT/add.out 2>&1 &
timeout 510 python3 benchmarks/ab/sweep.py configs/g2p_cmudict.yaml --out /tmp/sw1/g2p --parallel 6 $COMMON \
  --set data.corpus_dir=$CMUDICT --set train.keep_last=0 --set train.valid_every=500 \
  "base:train.max_steps=7900" "feed:model.input_feeding=true;train.max_steps=6900" \
  "dec2:model.dec_layers=2;train.max_steps=5400" "wide:model.hidden_size=512;model.emb_size=256;train.max_steps=4650" \
  "feeddec2:model.input_feeding=true;model.dec_layers=2;train.max_steps=4800" \
  "base16k:train.max_steps=16000" > $OUT/g2p.out 2>&1 &
sleep 60; nvidia-smi; wait
cat $OUT/add.out $OUT/g2p.out
# only the summaries come back: the device returns a limited number of files
cp /tmp/sw1/add/sweep.json $OUT/add-sweep.json; cp /tmp/sw1/g2p/sweep.json $OUT/g2p-sweep.json
