#!/usr/bin/env bash
# The whole test suite: unit tests, real IPython shells, real kernels
# (nbclient), the real `dot`, a real dask cluster, JupyterLab in chromium, and
# the teaching notebooks under nbval.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
exec .venv/bin/python -m pytest -q tests "$@"
