"""The XOR builder: the generating process, and the shard contract run through it."""

import sys

import numpy as np
import pytest
from scipy import stats

from polymodal.builders.core.base import ShardSpec, shard_rng
from polymodal.builders.core.manifest import load_manifest, verify
from polymodal.builders.core.runner import build
from polymodal.builders.xor import (
    XorBuilder,
    XorConfig,
    bayes_accuracy,
    float_list,
    generate,
)
from tests.helpers import folder_bytes, sigkill_when

SMALL = dict(train=600, val=200, test=300, test_draws=2, shard_size=250)


def _draw(n, dim, p_hat, seed=0):
    return generate(np.random.default_rng(seed), n, dim, p_hat)


@pytest.mark.parametrize("p_hat", [0.0, 0.3, 0.5, 1.0])
def test_generating_process_statistics(p_hat):
    n, dim = 100_000, 5
    a, b, c, i = _draw(n, dim, p_hat)
    for bits in (a, b):
        se = np.sqrt(0.25 / bits.size)
        assert abs(bits.mean() - 0.5) < 4 * se
    # P(c == a XOR b on all bits) = p_hat + (1 - p_hat) * P(b == 0).
    expected = p_hat + (1 - p_hat) * 2.0**-dim
    observed = np.all(c == (a ^ b), axis=1).mean()
    assert abs(observed - expected) <= 4 * np.sqrt(expected * (1 - expected) / n) + 1e-12
    # One switch per sample: rows follow exactly one rule.
    assert np.array_equal(c[i == 1], (a ^ b)[i == 1])
    assert np.array_equal(c[i == 0], a[i == 0])
    assert abs(i.mean() - p_hat) <= 4 * np.sqrt(p_hat * (1 - p_hat) / n) + 1e-12


def _as_int(bits):
    return bits @ (1 << np.arange(bits.shape[1]))


def test_b_is_pairwise_independent_of_c_at_p_hat_one():
    a, b, c, _ = _draw(200_000, 3, 1.0, seed=1)
    table = np.zeros((8, 8))
    np.add.at(table, (_as_int(b), _as_int(c)), 1)
    assert stats.chi2_contingency(table).pvalue > 1e-4
    # ... while the triple is fully dependent: c is a function of (a, b).
    assert np.array_equal(c, a ^ b)


def test_shard_rngs_are_independent_of_order():
    s0, s1 = ShardSpec("train", 0, 0, 10), ShardSpec("train", 1, 10, 10)
    first = shard_rng(0, s1).random(4)
    shard_rng(0, s0).random(100)
    assert np.array_equal(first, shard_rng(0, s1).random(4))
    assert not np.array_equal(first, shard_rng(0, ShardSpec("val", 1, 10, 10)).random(4))


def test_float_list_parses_sweeps():
    assert float_list("0,0.5,1") == [0.0, 0.5, 1.0]
    assert float_list("0,0.1,...,1") == [round(k / 10, 3) for k in range(11)]
    with pytest.raises(ValueError):
        float_list("0,...,1")


def test_bayes_accuracy_matches_the_spec():
    assert bayes_accuracy(5, 0.0) == pytest.approx(0.03125)
    assert bayes_accuracy(5, 0.5) == pytest.approx(0.515625)
    assert bayes_accuracy(5, 1.0) == 1.0


def test_builds_are_byte_identical_across_runs_and_worker_counts(tmp_path):
    cfg = XorConfig(p_hat=0.5, seed=3, **SMALL)
    one = build(XorBuilder(cfg), tmp_path / "one", progress=False)
    two = build(XorBuilder(cfg), tmp_path / "two", workers=2, progress=False)
    assert one == two
    assert folder_bytes(tmp_path / "one") == folder_bytes(tmp_path / "two")
    other = build(XorBuilder(XorConfig(p_hat=0.5, seed=4, **SMALL)), tmp_path / "three", progress=False)
    assert other["dataset_id"] != one["dataset_id"]
    assert other["shards"][0]["sha256"] != one["shards"][0]["sha256"]


def test_each_p_hat_of_a_sweep_draws_its_own_bits(tmp_path):
    """The paper draws each p_hat afresh: two p_hats under one seed share no a and b bits beyond chance."""
    import webdataset as wds

    def bits(p_hat):
        build(XorBuilder(XorConfig(p_hat=p_hat, seed=0, **SMALL)), tmp_path / str(p_hat), progress=False)
        urls = sorted(str(p) for p in (tmp_path / str(p_hat) / "train").glob("*.tar"))
        samples = list(wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode())
        return np.stack([np.concatenate([s["a.npy"], s["b.npy"]]) for s in samples])

    half, one = bits(0.5), bits(1.0)
    assert half.shape == one.shape == (600, 10)
    assert 0.45 < (half == one).mean() < 0.55  # independent bits agree half the time; shared ones always
    assert np.array_equal(bits(0.5), half)  # and each p_hat is still reproducible


def test_manifest_and_card_describe_the_build(tmp_path):
    cfg = XorConfig(p_hat=0.25, seed=0, **SMALL)
    manifest = build(XorBuilder(cfg), tmp_path, progress=False)
    assert manifest["splits"]["train"] == {"samples": 600, "shards": 3, "rows": 600, "failed": 0}
    assert set(manifest["splits"]) == {"train", "val", "test_0", "test_1"}
    assert manifest["config"]["p_hat"] == 0.25 and manifest["seed"] == 0
    assert manifest["fields"] == ["a.npy", "b.npy", "c.npy", "json"]
    card = (tmp_path / "README.md").read_text()
    assert card.startswith("---\n") and manifest["dataset_id"] in card
    assert "| train | 600 | 3 | 0 |" in card and "p_hat=0.25" in card
    total = sum(s["samples"] for s in manifest["splits"].values())
    assert total == 1400 and "size_categories:\n- 1K<n<10K\n" in card  # the build's size, not a fixed category


def test_samples_round_trip_through_webdataset(tmp_path):
    import webdataset as wds

    build(XorBuilder(XorConfig(p_hat=1.0, seed=0, **SMALL)), tmp_path, progress=False)
    urls = sorted(str(p) for p in (tmp_path / "train").glob("*.tar"))
    ds = wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode()
    samples = [s for s in ds if s]
    assert [s["__key__"] for s in samples] == [f"{k:09d}" for k in range(600)]
    for s in samples:
        assert s["json"]["i"] == 1
        assert np.array_equal(s["c.npy"], s["a.npy"] ^ s["b.npy"])


def test_hf_datasets_reads_the_shards(tmp_path):
    datasets = pytest.importorskip("datasets")
    build(XorBuilder(XorConfig(p_hat=0.0, seed=0, **SMALL)), tmp_path, progress=False)
    ds = datasets.load_dataset(
        "webdataset", data_files={"val": str(tmp_path / "val" / "*.tar")}, split="val", cache_dir=str(tmp_path / "hf")
    )
    assert len(ds) == 200
    row = ds[0]
    assert np.array_equal(np.asarray(row["a.npy"]), np.asarray(row["c.npy"]))  # p_hat = 0: c = a
    assert row["json"] == {"i": 0}


def test_verify_names_each_bad_shard(tmp_path):
    build(XorBuilder(XorConfig(seed=0, **SMALL)), tmp_path, progress=False)
    assert verify(tmp_path) == []
    truncated = tmp_path / "train" / "xor-000000.tar"
    truncated.write_bytes(truncated.read_bytes()[:-1000])
    flipped = tmp_path / "val" / "xor-000000.tar"
    data = bytearray(flipped.read_bytes())
    data[700] ^= 0x01
    flipped.write_bytes(bytes(data))
    (tmp_path / "test_0" / "xor-000000.tar").unlink()
    (tmp_path / "train" / "xor-000099.tar").write_bytes(b"")
    found = {(p.path, p.kind) for p in verify(tmp_path)}
    assert found == {
        ("train/xor-000000.tar", "truncated"),
        ("val/xor-000000.tar", "altered"),
        ("test_0/xor-000000.tar", "missing"),
        ("train/xor-000099.tar", "extra"),
    }


def test_verify_cli_exits_nonzero_and_names_the_shard(tmp_path, run_cli):
    build(XorBuilder(XorConfig(seed=0, **SMALL)), tmp_path, progress=False)
    assert run_cli("polymodal.builders", "verify", tmp_path).returncode == 0
    shard = tmp_path / "val" / "xor-000000.tar"
    shard.write_bytes(shard.read_bytes()[:512])
    proc = run_cli("polymodal.builders", "verify", tmp_path, check=False)
    assert proc.returncode == 1 and "val/xor-000000.tar: truncated" in proc.stderr


def test_a_folder_holding_another_dataset_is_refused(tmp_path):
    build(XorBuilder(XorConfig(seed=0, **SMALL)), tmp_path, progress=False)
    with pytest.raises(SystemExit, match="already holds .*dataset"):
        build(XorBuilder(XorConfig(seed=1, **SMALL)), tmp_path, progress=False)


def test_sigkill_mid_build_then_resume_equals_uninterrupted(tmp_path, run_cli):
    args = ["--p-hat", "0.5", "--train", "30000", "--val", "0", "--test", "0", "--test-draws", "1",
            "--shard-size", "1250", "--seed", "7", "--no-progress"]
    run_cli("polymodal.builders", "build", "xor", "--out", tmp_path / "whole", *args)

    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "polymodal.builders", "build", "xor", "--out", str(killed), *args]
    sigkill_when(cmd, lambda: len(list(killed.glob("train/*.stats.json"))) >= 3)
    done = len(list(killed.glob("train/*.stats.json")))
    assert 3 <= done < 24 and not (killed / "manifest.json").exists()

    run_cli("polymodal.builders", "build", "xor", "--out", killed, *args)
    assert folder_bytes(killed) == folder_bytes(tmp_path / "whole")
    assert verify(killed) == []
    assert load_manifest(killed)["splits"]["train"]["samples"] == 30000
