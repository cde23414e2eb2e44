#!/bin/bash
cd /work/main
for a in metro urban suburban; do
  .venv/bin/python -m experiments.field_trial --full --areas $a --methods sim2real_anchored,sim2real,oracle --out runs/full_$a > runs/full_$a.log 2>&1
done
.venv/bin/python -m experiments.field_trial --combine runs/full_metro/field_trial.json runs/full_urban/field_trial.json runs/full_suburban/field_trial.json --out runs/full_combined > runs/full_combined.log 2>&1
