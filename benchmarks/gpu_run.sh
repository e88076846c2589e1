#!/usr/bin/env bash
# The device check of issue 8.5, in one call on a CUDA machine, from the repository root:
#   CUDA tests of the metrics, CUDA heatmaps vs the CPU and pytorch-grad-cam, the demo search on GPU and CPU,
#   and the synthesis and methods benchmarks on the GPU. Each step is time-boxed; outputs go to $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/sycam-gpu}
mkdir -p "$OUT"
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))" | tee -a "$OUT/gpu.txt"
timeout 120 python -m pytest -q -p no:cacheprovider tests/metrics/test_metrics_cuda.py 2>&1 | tail -4 | tee "$OUT/cuda_tests.txt"
timeout 240 python benchmarks/gpu_check.py 2>&1 | tail -2 | tee "$OUT/gpu_check.json"
timeout 120 python benchmarks/synthesis.py --device cuda --repeats 1 2>&1 | tail -25 | tee "$OUT/synthesis.txt"
timeout 90 python benchmarks/methods.py --device cuda --repeats 2 --no-shared 2>&1 | tail -20 | tee "$OUT/methods.txt"
