#!/usr/bin/env bash
# Does a model that has seen separated instances do better? (bench/RESULTS.md, issue 11)
# The shipped model fine-tuned for exactly one epoch on a `--separate` import vs on the plain import
# (same files, same grouped split, same steps), then both scored on the test split by the plain
# import's `merged` flag. About 60 min on 2 CPU cores.   Usage: bench/bench_separation_finetune.sh WORK
set -euo pipefail
W=${1:?usage: $0 WORK}
CLI=.venv/bin/chromosomenet PY=.venv/bin/python
SRC=../shared/data/tseng2023 MODEL=models/chromosomenet-view-resnet18
for kind in plain sep; do
  flag=$([ $kind = sep ] && echo --separate || true)
  $CLI import-tseng $SRC $W/raw_full_$kind $flag --overwrite | tail -4
  $PY tools/without_sample_cases.py $W/raw_full_$kind $W/raw_$kind
  $CLI build-dataset $W/raw_$kind $W/ds_$kind --split grouped --on-error skip --overwrite | tail -3
done
cmp <(cut -d, -f1,4 $W/ds_plain/manifest.csv) <(cut -d, -f1,4 $W/ds_sep/manifest.csv) && echo "same files, same splits"
for kind in plain sep; do
  $CLI train --model chromosomenet_view_resnet18 --init $MODEL --epochs 1 --batch-size 64 --lr 5e-4 \
    --weight-decay 0.05 --pct-start 0.1 --rotate 10 --patience 100 --workers 2 --eval-batch-size 256 \
    --data $W/ds_$kind --out $W/ft_$kind
  $CLI evaluate $W/ft_$kind --data $W/ds_$kind --out $W/eval_ft_$kind --no-timing > /dev/null
  $CLI evaluate local-dir:$MODEL --data $W/ds_$kind --out $W/eval_shipped_$kind --no-timing > /dev/null
done
for e in ft_plain ft_sep shipped_plain shipped_sep; do
  echo "## $e"; $PY bench/bench_shipped.py --eval $W/eval_$e --data $W/ds_${e##*_} --raw $W/raw_plain \
    --costs $MODEL/karyotype_costs.json
done
