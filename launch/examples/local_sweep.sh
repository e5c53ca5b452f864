#!/usr/bin/env bash
# Local development sweep: installs the project into .venv (once) and runs a sweep on local Ray.
#   launch/examples/local_sweep.sh                              # the embedded default (airline, CPU)
#   launch/examples/local_sweep.sh launch/examples/sweeps/sunspots.yaml --set seed=1
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -x .venv/bin/hindsight-ray ] || { python3 -m venv .venv && .venv/bin/pip install -q -e .; }
exec .venv/bin/hindsight-ray sweep "$@"
