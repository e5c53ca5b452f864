#!/usr/bin/env bash
# On the GPU machine, from the repository root (its Python has PyTorch and JAX):
#   bash launch/cluster/gpu/run_check.sh [gpu_check.py arguments]
# Unpacks launch/cluster/gpu/wheels/*.whl (python launch/cluster/gpu/fetch_wheels.py made them) into a folder on
# PYTHONPATH, beside this checkout, and runs launch/cluster/gpu_check.py; the JSON line goes to $OUT too when set.
set -euo pipefail
cd "$(dirname "$0")/../../.."
site="${TMPDIR:-/tmp}/hindsight-gpu-site"
python3 - "$site" launch/cluster/gpu/wheels <<'PY'
import sys, zipfile
from pathlib import Path
site, wheels = Path(sys.argv[1]), sorted(Path(sys.argv[2]).glob("*.whl"))
if not wheels:
    sys.exit("no wheels in launch/cluster/gpu/wheels: run python launch/cluster/gpu/fetch_wheels.py first (on a machine with pip access)")
site.mkdir(parents=True, exist_ok=True)
for wheel in wheels:
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.infolist():
            path = archive.extract(member, site)
            mode = member.external_attr >> 16
            if mode & 0o111:  # Ray's raylet and GCS server: extract() drops the modes the wheel records
                Path(path).chmod(mode & 0o777)
print(f"{len(wheels)} wheels unpacked into {site}", file=sys.stderr)
PY
export PYTHONPATH="$PWD:$site${PYTHONPATH:+:$PYTHONPATH}"
export PATH="$site/bin:$PATH"
out=()
if [ -n "${OUT:-}" ]; then out=(--out "$OUT/gpu_check.json"); fi
exec python3 launch/cluster/gpu_check.py "${out[@]}" "$@"
