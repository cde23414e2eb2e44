#!/bin/bash
# What produced this folder (commit f93cbab; run from the repo root, 2-core CPU, ~35 min + ~30 min).
M=docs/measured/cpu-2core/table1_stratified
for s in 0 1 2 3; do
  .venv/bin/python -m experiments.table1 --seed $s --quiet --out $M/default_s$s > $M/default_s$s/run.log 2>&1
done
for s in 0 1 2; do
  .venv/bin/python -m experiments.table1 --seed $s --quiet --twin-samples 100000 --commercial-samples 100000 \
    --twin-steps 3000 --commercial-steps 1000 --n-models 5 --out $M/full_s$s > $M/full_s$s/run.log 2>&1
done
