"""The Synthetic-XNOR builder: the generating process, its exact Bayes bound, and the shard contract."""

import io
import itertools
import json
from collections import defaultdict

import numpy as np
import pytest

from polymodal.builders.core.manifest import verify
from polymodal.builders.core.runner import build
from polymodal.builders.xnor import (
    CORRUPT_B,
    CORRUPT_C,
    NONE,
    XnorBuilder,
    XnorConfig,
    bayes_accuracy,
    draws,
    realised_bounds,
    split_sizes,
)
from tests.helpers import folder_bytes, split_samples

SMALL = dict(bits=4, dim=20, samples=400, shard_size=70)


def _build(tmp_path, name="data", **config):
    folder = tmp_path / name
    build(XnorBuilder(XnorConfig(**{**SMALL, **config})), folder, progress=False)
    return folder


def _rows(folder, split="train"):
    """Every sample of a split: the three vectors as arrays and the meta."""
    rows = []
    for sample in split_samples(folder, split).values():
        vectors = {m: np.load(io.BytesIO(sample[f"{m}.npy"])) for m in "abc"}
        rows.append((vectors, json.loads(sample["json"])))
    return rows


def test_the_signal_is_the_paper_s_and_b_times_c_is_a_when_nothing_is_corrupted(tmp_path):
    k, scale = SMALL["bits"], 2.0
    for vectors, meta in _rows(_build(tmp_path, corruption_p=0.0, signal_scale=scale)):
        a, b, c = (vectors[m][:3 * k] / scale for m in "abc")
        assert set(np.unique(np.concatenate([a, b, c]))) <= {-1.0, 1.0}
        assert np.array_equal(b * c, a)  # in ±1 space B⊙C is A's signal
        assert np.array_equal(a[2 * k:], a[:k] * a[k:2 * k])  # xnor: +1 exactly where u and v agree
        assert (b[k:2 * k] == 1).all() and (c[:k] == 1).all()
        assert meta["corrupted"] == "none" and meta["donor"] is None
        assert vectors["a"].dtype == np.float32 and vectors["a"].shape == (SMALL["dim"],)


def test_at_p_one_exactly_one_of_b_and_c_carries_its_donor_s_signal_and_keeps_its_noise(tmp_path):
    k = SMALL["bits"]
    clean = {meta["index"]: vectors for vectors, meta in _rows(_build(tmp_path, "clean", corruption_p=0.0))}
    corrupted = _rows(_build(tmp_path, "swapped", corruption_p=1.0))
    world = draws(XnorConfig(**SMALL))
    assert {meta["corrupted"] for _, meta in corrupted} == {"b", "c"}
    for vectors, meta in corrupted:
        own = clean[meta["index"]]
        assert np.array_equal(vectors["a"], own["a"])  # A is never corrupted
        bad, good = meta["corrupted"], {"b": "c", "c": "b"}[meta["corrupted"]]
        assert np.array_equal(vectors[good], own[good])
        assert np.array_equal(vectors[bad][3 * k:], own[bad][3 * k:])  # the distractors are kept
        donor = world.u if bad == "b" else world.v
        bits = (vectors[bad][:k] if bad == "b" else vectors[bad][k:2 * k]) > 0
        assert (bits.astype(np.int64) << np.arange(k)).sum() == donor[meta["donor"]]


def test_gaussian_corruption_replaces_the_whole_vector_and_is_seen(tmp_path):
    k = SMALL["bits"]
    for vectors, meta in _rows(_build(tmp_path, corruption="gaussian", corruption_p=0.5)):
        for m, constant in (("b", slice(k, 2 * k)), ("c", slice(0, k))):
            intact = (vectors[m][constant] == 1).all()
            assert intact == (meta["corrupted"] != m)
        assert meta["donor"] is None


def test_splits_partition_the_dataset_at_random_and_bits_are_fair():
    config = XnorConfig(samples=30_000)
    assert split_sizes(30_000) == {"train": 24_000, "val": 3_000, "test": 3_000}
    world = draws(config)
    everyone = np.concatenate(list(world.splits.values()))
    assert np.array_equal(np.sort(everyone), np.arange(30_000)) and not np.array_equal(everyone, np.arange(30_000))
    bits = (world.u[:, None] >> np.arange(16)) & 1
    assert abs(bits.mean() - 0.5) < 4 * np.sqrt(0.25 / bits.size)
    assert abs((world.corrupted == CORRUPT_B).mean() - 0.5) < 0.02 and (world.corrupted != NONE).all()


def test_the_corrupted_samples_of_a_smaller_p_stay_corrupted_at_a_larger_one():
    low, high = (draws(XnorConfig(**{**SMALL, "corruption_p": p})) for p in (0.3, 0.7))
    assert np.array_equal(low.u, high.u) and np.array_equal(low.donor, high.donor)
    hit_low, hit_high = low.corrupted != NONE, high.corrupted != NONE
    assert (hit_high[hit_low]).all() and hit_high.sum() > hit_low.sum()


def _enumerated(samples, candidates, bits, p, s, gaussian):
    """observation -> P(observation, the query is candidate j) for every j, over every possible world: all bits
    of all samples, the query's source among the candidates, what is corrupted and (swap) the donor."""
    joint = defaultdict(lambda: np.zeros(candidates))
    codes = range(2**bits)
    events = [(event, chance) for event, chance in ((NONE, 1 - p), (CORRUPT_B, p * s), (CORRUPT_C, p * (1 - s)))
              if chance > 0]  # an impossible event makes no observation
    for u in itertools.product(codes, repeat=samples):
        for v in itertools.product(codes, repeat=samples):
            for j, (event, chance) in itertools.product(range(candidates), events):
                for donor in [None] if gaussian or event == NONE else range(samples):
                    weight = chance * (1 if donor is None else 1 / samples)
                    shown_u = u[donor] if event == CORRUPT_B and donor is not None else u[j]
                    shown_v = v[donor] if event == CORRUPT_C and donor is not None else v[j]
                    if gaussian:  # the corrupted modality is seen, and shows nothing
                        shown_u, shown_v = (-1 if event == CORRUPT_B else shown_u), (-1 if event == CORRUPT_C else shown_v)
                    seen = (u[:candidates], v[:candidates], shown_u, shown_v, event if gaussian else None)
                    joint[seen][j] += weight
    return joint


@pytest.mark.parametrize(("samples", "candidates", "bits", "p", "s"), [
    (3, 2, 1, 1.0, 0.5), (4, 3, 1, 0.6, 0.3), (3, 2, 2, 0.8, 0.5), (3, 3, 1, 1.0, 0.5), (3, 2, 1, 0.0, 0.5)])
@pytest.mark.parametrize("gaussian", [False, True])
def test_the_bayes_formula_equals_an_enumeration_of_every_world(samples, candidates, bits, p, s, gaussian):
    """The candidates are the first samples (which ones does not matter: samples are exchangeable)."""
    joint = _enumerated(samples, candidates, bits, p, s, gaussian)
    # Every assignment of bits and every source, once (bits and sources uniform, so unweighted).
    assert sum(w.sum() for w in joint.values()) == pytest.approx(2 ** (2 * bits * samples) * candidates)
    keys = list(joint)
    query_u = np.array([max(k[2], 0) for k in keys])
    query_v = np.array([max(k[3], 0) for k in keys])
    predicted = np.concatenate([
        bayes_accuracy(np.array(k[0]), np.array(k[1]), query_u[n:n + 1], query_v[n:n + 1], samples=samples, bits=bits,
                       corruption_p=p, b_share=s, corrupted=None if k[4] is None else np.array([k[4]]))
        for n, k in enumerate(keys)])
    exact = np.array([joint[k].max() / joint[k].sum() for k in keys])
    np.testing.assert_allclose(predicted, exact, rtol=1e-12)
    # ... so the expected Bayes accuracy, the mean over worlds of a query's chance, is the same too.
    weights = np.array([joint[k].sum() for k in keys])
    assert (weights * predicted).sum() / weights.sum() == pytest.approx((weights * exact).sum() / weights.sum())


def test_the_bound_at_the_default_settings():
    """The official configuration, this builder's default seed: the figures the card and the task report."""
    swap = realised_bounds(XnorConfig())
    assert swap == pytest.approx({"all": 0.90636, "inbatch": 0.99633}, abs=1e-5)
    assert realised_bounds(XnorConfig(corruption_p=0.0)) == {"all": 1.0, "inbatch": 1.0}
    assert realised_bounds(XnorConfig(corruption="gaussian"))["all"] > swap["all"]  # a seen corruption misleads less


def test_builds_are_byte_identical_across_runs_and_worker_counts(tmp_path):
    one = build(XnorBuilder(XnorConfig(**SMALL)), tmp_path / "one", progress=False)
    two = build(XnorBuilder(XnorConfig(**SMALL)), tmp_path / "two", workers=2, progress=False)
    assert one == two and len(one["shards"]) > 2
    assert folder_bytes(tmp_path / "one") == folder_bytes(tmp_path / "two")
    other = build(XnorBuilder(XnorConfig(**{**SMALL, "seed": 1})), tmp_path / "three", progress=False)
    assert other["dataset_id"] != one["dataset_id"] and other["shards"][0]["sha256"] != one["shards"][0]["sha256"]


def test_manifest_card_and_verify(tmp_path):
    folder = _build(tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {s: v["samples"] for s, v in manifest["splits"].items()} == {"train": 320, "val": 40, "test": 40}
    assert manifest["fields"] == ["a.npy", "b.npy", "c.npy", "json"] and manifest["builder"] == "xnor"
    card = (folder / "README.md").read_text()
    bounds = realised_bounds(XnorConfig(**SMALL))
    assert "{{ " not in card and manifest["dataset_id"] in card and f"**{bounds['all']:.4f}**" in card
    assert "polymodal build xnor --out DIR --bits 4 --dim 20" in card
    assert verify(folder) == []
    shard = folder / "val" / "xnor-000000.tar"
    shard.write_bytes(shard.read_bytes()[:-1000])
    assert [(p.path, p.kind) for p in verify(folder)] == [("val/xnor-000000.tar", "truncated")]


def test_the_command_line_builds_a_sweep_and_refuses_a_signal_that_does_not_fit(tmp_path, run_cli):
    run_cli("polymodal.builders", "build", "xnor", "--out", tmp_path, "--bits", "3", "--dim", "9", "--samples", "50",
            "--corruption-p", "0,1", "--no-progress")
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["corruption_p=0", "corruption_p=1"]
    proc = run_cli("polymodal.builders", "build", "xnor", "--out", tmp_path / "x", "--bits", "4", "--dim", "9",
                   check=False)
    assert proc.returncode != 0 and "3K = 12" in proc.stderr
