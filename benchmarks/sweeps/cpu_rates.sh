#!/usr/bin/env bash
# CPU step rates behind the GPU sweeps' step counts (2-core CPU, one variant at a time):
# steps made in 36 s (add) or 30 s (add2, add3, g2p 45 s) of training; see sweep.json in each.
set -u
S=benchmarks/sweeps; R="--parallel 1 --device cpu --set train.valid_every=100000 --set train.max_steps=100000"
python benchmarks/ab/sweep.py configs/g2p_cmudict.yaml --out logs/cpu-rate-g2p --parallel 1 --device cpu \
  --set train.max_minutes=0.75 --set train.warmup_steps=20 \
  "base:" "wide:model.hidden_size=512;model.emb_size=256" "dec2:model.dec_layers=2" \
  "feed:model.input_feeding=true" "bt10k:train.batch_tokens=10000" "additive:model.attention=additive"
python benchmarks/ab/sweep.py $S/addition_2600.yaml --out logs/cpu-rate-add $R --set train.max_minutes=0.6 \
  "l256add:" "l512add:model.hidden_size=512" "l384add:model.hidden_size=384" \
  "l512gen:model.hidden_size=512;model.attention=general" "l256enc2:model.enc_layers=2"
python benchmarks/ab/sweep.py $S/addition_2600.yaml --out logs/cpu-rate-add2 $R --set train.max_minutes=0.5 \
  "e512:model.enc_hidden_size=512" "e512bt3:model.enc_hidden_size=512;train.batch_tokens=3000" \
  "bt3:train.batch_tokens=3000" "bt2:train.batch_tokens=2000" \
  "enc2bt3:model.enc_layers=2;train.batch_tokens=3000" "e384:model.enc_hidden_size=384"
python benchmarks/ab/sweep.py $S/addition_2600.yaml --out logs/cpu-rate-add3 $R --set train.max_minutes=0.5 \
  "enc2bt2:model.enc_layers=2;train.batch_tokens=2000" "enc2bt15:model.enc_layers=2;train.batch_tokens=1500" \
  "enc3bt2:model.enc_layers=3;train.batch_tokens=2000" \
  "enc2e384bt2:model.enc_layers=2;model.enc_hidden_size=384;train.batch_tokens=2000"
