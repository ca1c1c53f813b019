#!/bin/bash
# Distillation chain (docs/benchmarks.md, "Distilled G2P models"): wait for the teachers,
# distil the training words, then train the three students side by side (1 thread each):
# on the teacher's outputs, on those plus the references, and a smaller one on the outputs.
cd "$(dirname "$0")/.."
while pgrep -f "name=g2p_teacher_" > /dev/null; do sleep 20; done
if [ ! -s runs/distill/distilled.tsv ]; then
  .venv/bin/tandem distill --teacher runs/g2p_teacher_l2r1/best.pt \
      --rescore runs/g2p_teacher_r2l1/best.pt --data runs/distill/train_words.txt \
      --out runs/distill/distilled.tsv --beam 5 || exit 1
fi
cat runs/distill/distilled.tsv runs/distill/train.tsv > runs/distill/distilled_and_references.tsv
# students: tandem train (a stop saves a checkpoint and ends; scoring on test is a separate,
# single step afterwards: python benchmarks/g2p_cmudict.py --no-train --set name=... ...)
for s in distilled:distilled.tsv distilled_refs:distilled_and_references.tsv \
         distilled_small:distilled.tsv:"--set model.hidden_size=256 --set model.emb_size=64"; do
  IFS=: read name file extra <<< "$s"
  if [ -f runs/g2p_student_$name/last.pt ]; then
    nohup .venv/bin/tandem train --resume runs/g2p_student_$name >> runs/g2p_student_$name.log 2>&1 &
  else
    nohup .venv/bin/tandem train configs/g2p_cmudict.yaml --set name=g2p_student_$name \
        --set run_dir=runs/g2p_student_$name --set data.corpus=null \
        --set data.train=runs/distill/$file --set data.dev=runs/distill/dev.tsv \
        --set data.test=runs/distill/test.tsv --set train.max_minutes=null \
        --set train.lr_horizon=steps --set train.max_steps=7900 --set train.threads=1 \
        $extra > runs/g2p_student_$name.log 2>&1 &
  fi
done
wait
