#!/usr/bin/env bash
# The main job: run the demo plan headless and write the executed notebook,
# the results table and the graph to demo-output/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh demo
mkdir -p demo-output
exec .venv/bin/nbsteps run notebooks/demo.ipynb -o demo-output/demo.ipynb \
  --results demo-output/results.csv --graph demo-output/graph.svg --store demo-output/checkpoints --yes
