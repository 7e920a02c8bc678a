#!/usr/bin/env bash
# The GPU measurements of docs/scale.md in one JSON, within 8 minutes on one GPU (benchmarks/perf/gpu/measure.py
# says what it measures and how it counts FLOPs):
#   bash benchmarks/perf/gpu.sh [measure.py options, e.g. --peak-tflops 362 for a device PEAK_BF16 lacks]
# It writes $GPU_JSON, else $OUT/gpu.json where OUT is set, else ./gpu.json. It needs polymodal installed
# (make setup) with a CUDA build of torch and transformers; nothing is downloaded: the encoders are built
# from their configs with random weights.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${GPU_JSON:-${OUT:-.}/gpu.json}
if ! python -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
    echo "gpu.sh: torch sees no CUDA device: run it on a GPU machine (python benchmarks/perf/gpu/measure.py --smoke --out x.json checks it on a CPU)" >&2
    exit 1
fi
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader || true
# measure.py writes the JSON after every section, so a run cut off here keeps what it measured ("complete": false).
timeout 470 python benchmarks/perf/gpu/measure.py --out "$out" "$@"
