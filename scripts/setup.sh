#!/usr/bin/env bash
# Install what polymodal needs on a fresh machine: ffmpeg, espeak-ng and (for the
# leaderboard site's browser test) chromium with its driver from apt, torch (the CPU
# wheel where there is no GPU), then the package itself and the stock readers its tests run.
# Safe to run again: each step checks before it installs.
set -euo pipefail
PYTHON=${PYTHON:-python3}
EXTRAS=${EXTRAS:-dev}

missing=()
for tool in ffmpeg espeak-ng chromium chromedriver; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${missing[*]} with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg espeak-ng chromium chromium-driver >/dev/null
  else
    echo "setup: missing ${missing[*]}; install them with your package manager (e.g. apt-get install ffmpeg espeak-ng chromium chromium-driver)" >&2
    exit 1
  fi
fi

# torch first, so that the package's unpinned `torch` requirement is already met:
# without a GPU take the CPU build, never a multi-GB CUDA one.
if ! "$PYTHON" -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
    "$PYTHON" -m pip install -q "torch>=2.1"
  else
    "$PYTHON" -m pip install -q ${TORCH_CPU_INDEX:+--index-url "$TORCH_CPU_INDEX"} "torch==2.13.0"
  fi
fi

"$PYTHON" -m pip install -q -e ".[${EXTRAS}]"

# The stock WebDataset readers that tests/builders/test_stock_readers.py runs on our shards (pyproject's `interop`
# extra), without their requirements: both require torchvision, whose PyPI wheels are CUDA builds that break
# transformers beside a CPU torch, and their WebDataset paths never call it. What those paths do import (regex,
# wcwidth for ftfy) is in `dev`.
"$PYTHON" -m pip install -q --no-deps "open-clip-torch>=3.0" "clip-benchmark>=1.6" "ftfy>=6"
echo "setup: done ($("$PYTHON" -c 'import torch, polymodal; print("polymodal", polymodal.__version__, "torch", torch.__version__)'))"
