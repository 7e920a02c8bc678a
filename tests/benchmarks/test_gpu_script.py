"""benchmarks/perf/gpu/measure.py, the Python of gpu.sh: its --smoke run on the CPU, its FLOP counts, its peaks."""

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "perf" / "gpu" / "measure.py"
SECTIONS = ("device", "train_heads", "featurize", "symile_loss")


def load_measure(monkeypatch):
    spec = importlib.util.spec_from_file_location("gpu_measure", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu") / "gpu.json"
    # 50 TFLOP/s is far above what a CPU reaches, so every bf16 entry gets an MFU, which must be in (0, 1].
    subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--peak-tflops", "50", "--out", str(out)], check=True,
                   capture_output=True)
    return json.loads(out.read_text())


def numbers(node, path=""):
    """Every (path, number) in a JSON tree, booleans aside."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from numbers(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from numbers(value, f"{path}[{i}]")
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield path, node


def mfu_entries(node):
    if isinstance(node, dict):
        if "mfu" in node:
            yield node
        for value in node.values():
            yield from mfu_entries(value)
    elif isinstance(node, list):
        for value in node:
            yield from mfu_entries(value)


def test_the_smoke_run_writes_every_section_with_finite_positive_numbers(smoke):
    assert smoke["complete"] and smoke["smoke"]
    assert all(section in smoke for section in SECTIONS)
    assert smoke["device"]["type"] == "cpu" and smoke["device"]["name"].startswith("cpu")
    assert set(smoke["featurize"]) == {"clip-vit-large-patch14", "whisper-large-v3-encoder", "xlm-roberta-large"}
    assert {"n", "n_squared"} <= set(smoke["symile_loss"])
    found = dict(numbers({k: smoke[k] for k in SECTIONS}))
    assert len(found) > 40
    bad = {path: value for path, value in found.items() if not (math.isfinite(value) and value > 0)}
    assert not bad


def test_mfu_is_a_fraction_for_bf16_work_and_absent_with_a_reason_for_float32(smoke):
    entries = list(mfu_entries({k: smoke[k] for k in SECTIONS}))
    bf16 = [*smoke["train_heads"], *(e["bf16"] for e in smoke["featurize"].values())]
    float32 = [*(e["float32"] for e in smoke["featurize"].values()), smoke["symile_loss"]["n"],
               smoke["symile_loss"]["n_squared"]]
    assert len(entries) == len(bf16) + len(float32)
    for entry in bf16:
        assert 0 < entry["mfu"] <= 1 and entry["mfu_reason"] is None
        assert entry["mfu"] == pytest.approx(entry["achieved_flops_per_s"] / 50e12)
    for entry in float32:
        assert entry["mfu"] is None and "float32" in entry["mfu_reason"]


def test_counted_flops_are_the_written_formulas(smoke):
    """The counter and the hand-derived formulas are independent: they agree exactly where every product is a
    weight matrix, and within biases and norms for the encoders."""
    for entry in smoke["train_heads"]:
        assert entry["flops_per_step"] == entry["flops_per_step_formula"]
    assert smoke["symile_loss"]["n_squared"]["flops"] == smoke["symile_loss"]["n_squared"]["flops_formula"]
    for name, entry in smoke["featurize"].items():
        assert entry["flops_per_sample"] == pytest.approx(entry["flops_per_sample_formula"], rel=0.1), name


def test_the_paper_configs_have_the_checkpoints_sizes_and_their_counted_flops_match_the_formula():
    counts = json.loads(subprocess.run([sys.executable, str(SCRIPT), "--flops"], check=True, capture_output=True,
                                       text=True).stdout)
    layer = 4 * (1024 * 1024 + 1024) + 2 * 2048 + (1024 * 4096 + 4096) + (4096 * 1024 + 1024)  # attention, norms, MLP
    clip = 3 * 14 * 14 * 1024 + 1024 + 257 * 1024 + 2048 + 24 * layer + 2048  # patches, CLS, positions, pre/post norm
    xlmr = 250002 * 1024 + 514 * 1024 + 1024 + 2048 + 24 * layer  # tokens, positions, type, norm
    whisper_layer = 4 * 1280 * 1280 + 3 * 1280 + 2 * 2560 + (1280 * 5120 + 5120) + (5120 * 1280 + 1280)  # k: no bias
    whisper = (128 * 1280 * 3 + 1280) + (1280 * 1280 * 3 + 1280) + 1500 * 1280 + 32 * whisper_layer + 2560
    assert {name: c["parameters"] for name, c in counts.items()} == {
        "clip-vit-large-patch14": clip, "whisper-large-v3-encoder": whisper, "xlm-roberta-large": xlmr}
    assert [c["tokens_per_sample"] for c in counts.values()] == [257, 1500, 96]
    for name, c in counts.items():
        assert c["flops_per_sample"] == pytest.approx(c["flops_per_sample_formula"], rel=0.01), name


def test_the_peak_table_is_read_by_device_name(monkeypatch):
    measure = load_measure(monkeypatch)
    assert measure.peak_bf16("NVIDIA H200")[0] == 989e12
    assert measure.peak_bf16("NVIDIA H100 80GB HBM3")[0] == 989e12
    assert measure.peak_bf16("NVIDIA H100 PCIe")[0] == 756e12
    assert measure.peak_bf16("NVIDIA A100-SXM4-80GB")[0] == 312e12
    peak, reason = measure.peak_bf16("NVIDIA GeForce RTX 2080")
    assert peak is None and "RTX 2080" in reason and "--peak-tflops" in reason
    assert measure.peak_bf16("NVIDIA GeForce RTX 2080", 100.0) == (100e12, "--peak-tflops")
    assert measure.mfu(1e12, None, reason, True) == {"mfu": None, "mfu_reason": reason}
