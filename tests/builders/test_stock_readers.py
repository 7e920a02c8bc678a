"""Our media shards through stock WebDataset readers, unpatched: open_clip's `get_wds_dataset` yields image–text
batches and CLIP_benchmark's `build_wds_dataset` yields image–label pairs (see stock_readers.py)."""

import importlib.util
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from polymodal.builders.core.manifest import load_manifest
from polymodal.builders.schema import IMAGE, LABEL
from tests.helpers import split_samples

READERS = {"open_clip_train": "open-clip-torch", "clip_benchmark": "clip-benchmark", "ftfy": "ftfy"}


def _read(folder: Path, split: str, view: Path) -> dict:
    missing = [dist for module, dist in READERS.items() if importlib.util.find_spec(module) is None]
    assert not missing, f"scripts/setup.sh installs the stock readers; missing here: {', '.join(missing)}"
    script = Path(__file__).with_name("stock_readers.py")
    proc = subprocess.run([sys.executable, str(script), str(folder), split, "--view", str(view)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])  # CLIP_benchmark prints its own warnings before


@pytest.mark.parametrize("dataset, split", [("small_m3", "train"), ("small_vgg", "test")])
def test_open_clip_and_clip_benchmark_read_our_shards(dataset, split, request, tmp_path):
    folder = request.getfixturevalue(dataset)
    samples = list(split_samples(folder, split).values())
    assert len(samples) == load_manifest(folder)["splits"][split]["samples"] >= 2
    got = _read(folder, split, tmp_path / "view")

    # open_clip keeps only samples with `txt` and an image extension: every one of ours, in batches of 4.
    batches = got["open_clip"]["batch_sizes"]
    assert sum(batches) == len(samples) and all(size == 4 for size in batches[:-1])
    assert got["open_clip"]["image_shapes"] == [[3, 32, 32]]
    assert got["open_clip"]["tokens"] == got["open_clip"]["expected_tokens"]  # each caption, tokenized

    # CLIP_benchmark: (image, class) per sample, in shard and key order.
    sizes = [list(Image.open(io.BytesIO(s[IMAGE])).size) for s in samples]
    assert got["clip_benchmark"] == [[size, int(s[LABEL])] for size, s in zip(sizes, samples)]
