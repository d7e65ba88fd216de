#!/usr/bin/env bash
# GPU benchmarks: W2 (training throughput of the cells on CUDA, float32 and bfloat16) and
# W4 (forecast latency with the model on the GPU). Run from anywhere on a machine with a
# CUDA GPU and a CUDA build of torch:
#
#     benchmarks/gpu_bench.sh            # full runs
#     benchmarks/gpu_bench.sh --quick    # a smoke run of both
#
# Results: benchmarks/results/gpu_throughput.{json,md} and latency_cuda.{json,md}
# (with _quick appended for --quick). PYTHON selects the interpreter (default .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
QUICK=()
if [[ "${1:-}" == "--quick" ]]; then
    QUICK=(--quick)
fi
if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu_bench.sh: no CUDA GPU visible to torch ($("$PY" -c 'import torch; print(torch.__version__)')); nothing to run" >&2
    exit 2
fi
"$PY" -c 'import torch; print("GPU:", torch.cuda.get_device_name(0), "| torch", torch.__version__, "| cuDNN", torch.backends.cudnn.version())'
"$PY" benchmarks/gpu_bench.py "${QUICK[@]}"
"$PY" benchmarks/bench_latency.py --device cuda "${QUICK[@]}"
