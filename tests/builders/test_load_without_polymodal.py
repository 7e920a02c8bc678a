"""A built folder as a user without polymodal reads it (issue 18, item 2): in a subprocess where `import polymodal`
fails, 🤗 datasets loads the folder by its card alone, plain webdataset reads the shards by the patterns the card
prints, and soundfile decodes the audio (see without_polymodal.py). What they saw is checked here against the
manifest and against the shards read with tarfile."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image

from polymodal.builders.core.manifest import load_manifest
from polymodal.builders.schema import AUDIO, CLIP_SECONDS, SAMPLE_RATE
from tests.builders.without_polymodal import decode_audio, digest
from tests.helpers import split_samples

SCRIPT = Path(__file__).with_name("without_polymodal.py")
HUB_NAME = {"val": "validation"}


def _read_without_polymodal(folder: Path, tmp_path: Path) -> dict:
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-I", str(SCRIPT), str(folder), str(tmp_path / "hf-cache")],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def _as_read(field: str, data: bytes):
    """A member's value as 🤗 datasets gives it under the card's features, decoded here by hand."""
    if field.endswith(".npy"):
        return np.load(io.BytesIO(data), allow_pickle=False).tolist()
    if field == "jpg":
        return Image.open(io.BytesIO(data))
    if field == "json":
        return json.loads(data)
    if field == "cls":
        return int(data)
    if field == "txt":
        return data.decode()
    return data  # flac: bytes, as the card says


@pytest.mark.parametrize("dataset", ["small_xor", "small_xnor", "small_m3", "small_vgg"])
def test_a_built_folder_loads_without_polymodal(dataset, request, tmp_path):
    folder = request.getfixturevalue(dataset)
    manifest = load_manifest(folder)
    got = _read_without_polymodal(folder, tmp_path)
    assert got["polymodal_importable"] is False and got["polymodal_modules"] == []

    # 🤗 datasets: every split under the Hub's name, with the manifest's row count.
    splits = {HUB_NAME.get(split, split): split for split in manifest["splits"]}
    assert got["datasets"]["rows"] == {hub: manifest["splits"][ours]["samples"] for hub, ours in splits.items()}
    for hub, ours in splits.items():
        key, sample = next(iter(split_samples(folder, ours).items()))  # the first key: datasets reads in order
        expected = {field: digest(_as_read(field, data)) for field, data in sample.items()}
        assert got["datasets"]["first"][hub] == {**expected, "__key__": digest(key)}
    for types in got["datasets"]["types"].values():
        if AUDIO in manifest["fields"]:  # the image decoded, the audio left as FLAC bytes
            assert [types[f] for f in ("jpg", "flac", "txt", "cls", "json")] == [
                "JpegImageFile", "bytes", "str", "int", "dict"]
        else:
            assert [types[f] for f in ("a.npy", "b.npy", "c.npy", "json")] == ["list", "list", "list", "dict"]

    # Plain webdataset, through the card's brace patterns: every split, every sample, in key order.
    wds = got["webdataset"]
    assert sorted(p.split("/")[0] for p in wds["patterns"]) == sorted(manifest["splits"])
    for split, s in manifest["splits"].items():
        assert wds["samples"][split] == s["samples"]
        assert wds["keys"][split] == list(split_samples(folder, split))

    # soundfile decodes the first clip of each split, through either reader, to what the tar holds.
    if AUDIO not in manifest["fields"]:
        assert "audio" not in got["datasets"] and wds["audio"] == {}
        return
    for split in manifest["splits"]:
        first = next(iter(split_samples(folder, split).values()))[AUDIO]
        audio, rate = soundfile.read(io.BytesIO(first), dtype="int16")
        assert rate == SAMPLE_RATE and audio.ndim == 1 and len(audio) > 0
        assert got["datasets"]["audio"][HUB_NAME.get(split, split)] == wds["audio"][split] == decode_audio(first)
        if manifest["builder"] == "vggsound-plus":  # a full window of the fixture clips
            assert len(audio) == CLIP_SECONDS * SAMPLE_RATE


def test_only_the_readers_guard_keeps_polymodal_out():
    """The same interpreter, flags and folder import polymodal when the guard is not installed: so the readers'
    `polymodal_importable: false` is the guard's doing, and the loads above really ran without it."""
    plain = subprocess.run([sys.executable, "-I", "-c", "import polymodal.builders"], capture_output=True, timeout=60,
                           cwd=SCRIPT.parent)
    assert plain.returncode == 0, plain.stderr
