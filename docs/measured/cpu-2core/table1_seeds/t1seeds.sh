#!/bin/bash
cd /work/main
for s in 1 2 3; do
  .venv/bin/python -m experiments.table1 --seed $s --quiet --out runs/t1_default_s$s > runs/t1_default_s$s.log 2>&1
done
for s in 1 2; do
  .venv/bin/python -m experiments.table1 --seed $s --quiet --twin-samples 100000 --commercial-samples 100000 --twin-steps 3000 --commercial-steps 1000 --n-models 5 --out runs/t1_full_s$s > runs/t1_full_s$s.log 2>&1
done
