"""Synthetic XNOR of Gated Symile (arXiv 2604.05834; TillmannRheude/gated_symile, datasets/synthetic_xnor.py).

Per sample: u, v ~ Bernoulli(0.5)^K and the signal A = [u, v, xnor(u, v)], B = [u, 1, u], C = [1, v, v],
each bit b written as (2b-1)*signal_scale in the first 3K coordinates of a vector whose other coordinates
are N(0, distractor_std^2) noise; in ±1 space B⊙C is A's signal. With probability corruption_p a sample has
exactly one of B or C corrupted: its signal is a donor's (swap_signal), or its whole vector is noise
(gaussian). A is never corrupted. The harness retrieves A from (B, C).

What the whole dataset is made of (bits, the split, who is corrupted and by which donor) is drawn once from
the seed, cheaply, so every shard reads the same draws; the noise comes from each shard's own RNG.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from polymodal.builders.core.base import Builder, Row, ShardSpec, sample_key, shard_rng
from polymodal.builders.core.cards import SYNTHETIC_LICENSE
from polymodal.builders.core.options import check_values, float_list, option
from polymodal.builders.core.tarshards import npy_rows
from polymodal.builders.schema import META, XNOR_FIELDS, XNOR_MODALITIES, npy_features

SPLIT_FRACTIONS = {"train": 0.8, "val": 0.1}  # test takes the rest, as the official random_split
#: What a sample's meta says was corrupted, by code: the order of `Draws.corrupted`'s values.
CORRUPTED = ("none", "b", "c")
NONE, CORRUPT_B, CORRUPT_C = range(len(CORRUPTED))
#: The paper's evaluation batch: its in-batch protocol retrieves among 128 candidates.
PAPER_EVAL_BATCH = 128
#: The spawn key of the dataset-wide draws: one word, so it never meets a shard's (split, index) key.
DATASET_STREAM = (0,)


@dataclass(frozen=True)
class XnorConfig:
    # 31 bits at most: a (u, v) pair is then one int64 code.
    bits: int = option(16, "bits K of u and of v; the signal takes the first 3K coordinates", low=1, high=31)
    dim: int = option(128, "coordinates per modality (at least 3K)", low=1)
    signal_scale: float = option(1.0, "a bit b is the coordinate (2b-1)*scale; must be > 0")
    distractor_std: float = option(3.0, "standard deviation of the noise coordinates")
    corruption_p: float = option(
        1.0, "probability that a sample has B or C corrupted; a list or sweep such as 0,0.25,...,1 builds one "
        "dataset per value into OUT/corruption_p=<value>", parse=lambda text: float_list(text), sweep=True,
        metavar="P[,P...]", high=1)
    b_share: float = option(0.5, "probability that a corrupted sample has B corrupted, else C", high=1)
    corruption: str = option("swap_signal", "swap_signal: the corrupted modality's signal coordinates are a "
                             "donor's, its noise kept; gaussian: its whole vector is fresh noise",
                             choices=("swap_signal", "gaussian"))
    samples: int = option(30_000, "samples in all, split 80/10/10 into train/val/test at random", low=10)
    seed: int = option(0, "master seed")
    shard_size: int = option(5_000, "samples per shard", low=1)

    def __post_init__(self):
        check_values(self)
        if 3 * self.bits > self.dim:
            raise ValueError(f"--dim {self.dim} cannot hold the 3K = {3 * self.bits} signal coordinates of --bits {self.bits}")
        if self.signal_scale <= 0:
            raise ValueError(f"--signal-scale must be > 0, got {self.signal_scale:g}")


def split_sizes(samples: int) -> dict[str, int]:
    sizes = {split: int(fraction * samples) for split, fraction in SPLIT_FRACTIONS.items()}
    return {**sizes, "test": samples - sum(sizes.values())}


@dataclass(frozen=True)
class Draws:
    """Everything about the dataset but its noise, by sample index 0..N-1."""

    u: np.ndarray  # (N,) int64 codes of u's K bits, bit k of the code being bit k of u
    v: np.ndarray
    splits: dict[str, np.ndarray]  # split -> its samples' indices, in the split's order
    corrupted: np.ndarray  # (N,) int8: NONE, CORRUPT_B or CORRUPT_C
    donor: np.ndarray  # (N,) int64: whose signal a swap_signal corruption copies, drawn for every sample


@functools.lru_cache(maxsize=4)
def draws(config: XnorConfig) -> Draws:
    """The dataset-wide draws. They do not depend on corruption_p or b_share beyond a threshold, so the datasets
    of a sweep share their bits and noise and the corrupted samples of a smaller p are corrupted at a larger one,
    as the official code's seeded draws do."""
    n, rng = config.samples, np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=DATASET_STREAM))
    u = rng.integers(0, 2**config.bits, size=n, dtype=np.int64)  # K independent fair bits each
    v = rng.integers(0, 2**config.bits, size=n, dtype=np.int64)
    order = rng.permutation(n)
    bounds = np.cumsum(list(split_sizes(n).values()))[:-1]
    splits = dict(zip(split_sizes(n), np.split(order, bounds)))
    corrupt = rng.random(n) < config.corruption_p
    on_b = rng.random(n) < config.b_share
    corrupted = np.where(corrupt, np.where(on_b, CORRUPT_B, CORRUPT_C), NONE).astype(np.int8)
    # Donors independent and uniform over the whole dataset (itself included), where the official draws one
    # permutation: independence is what makes the Bayes bound below exact.
    donor = rng.integers(0, n, size=n, dtype=np.int64)
    return Draws(u, v, splits, corrupted, donor)


def signs(codes: np.ndarray, bits: int) -> np.ndarray:
    """(n, K) ±1 float32: bit k of each code as 2b-1."""
    return (2 * ((codes[:, None] >> np.arange(bits)) & 1) - 1).astype(np.float32)


def clean_signals(u: np.ndarray, v: np.ndarray, bits: int, scale: float) -> dict[str, np.ndarray]:
    """Each modality's (n, 3K) signal coordinates before corruption: A = [u, v, xnor], B = [u, 1, u], C = [1, v, v].
    xnor(u, v) = 1 - (u XOR v) is +1 exactly when the bits agree: the product of their signs."""
    su, sv = signs(u, bits), signs(v, bits)
    one = np.ones_like(su)
    blocks = {"a": (su, sv, su * sv), "b": (su, one, su), "c": (one, sv, sv)}
    return {m: np.concatenate(parts, axis=1) * np.float32(scale) for m, parts in blocks.items()}


def generate(config: XnorConfig, indices: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The (n, dim) float32 vectors a, b, c of the samples `indices`, their noise drawn from `rng`."""
    world, signal_dim = draws(config), 3 * config.bits
    n = len(indices)
    vectors = dict(zip(XNOR_MODALITIES, rng.normal(0.0, config.distractor_std, (3, n, config.dim)).astype(np.float32)))
    for m, signal in clean_signals(world.u[indices], world.v[indices], config.bits, config.signal_scale).items():
        vectors[m][:, :signal_dim] = signal
    corrupt = {"b": world.corrupted[indices] == CORRUPT_B, "c": world.corrupted[indices] == CORRUPT_C}
    if config.corruption == "swap_signal":
        donors = world.donor[indices]
        donated = clean_signals(world.u[donors], world.v[donors], config.bits, config.signal_scale)
        for m, rows in corrupt.items():
            vectors[m][rows, :signal_dim] = donated[m][rows]  # the noise coordinates stay: it still looks valid
    else:
        # Drawn after the clean noise, so that noise is the same at every corruption_p.
        fresh = rng.normal(0.0, config.distractor_std, (2, n, config.dim)).astype(np.float32)
        for (m, rows), noise in zip(corrupt.items(), fresh):
            vectors[m][rows] = noise[rows]
    return vectors


def sample_meta(config: XnorConfig, index: int) -> dict:
    world = draws(config)
    corrupted = CORRUPTED[world.corrupted[index]]
    swapped = corrupted != "none" and config.corruption == "swap_signal"
    return {"index": int(index), "corrupted": corrupted, "donor": int(world.donor[index]) if swapped else None}


def pair_codes(u: np.ndarray, v: np.ndarray, bits: int) -> np.ndarray:
    """One int64 code per (u, v) pair: K <= 31 keeps it in 62 bits."""
    return (u << bits) | v


def _counts(population: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """How many entries of `population` equal each key."""
    values, counts = np.unique(population, return_counts=True)
    at = np.searchsorted(values, keys).clip(max=len(values) - 1)
    return np.where(values[at] == keys, counts[at], 0)


def bayes_accuracy(candidate_u: np.ndarray, candidate_v: np.ndarray, query_u: np.ndarray, query_v: np.ndarray, *,
                   samples: int, bits: int, corruption_p: float, b_share: float,
                   corrupted: np.ndarray | None = None) -> np.ndarray:
    """Per query, the probability that the Bayes-optimal guess of its A among the candidates is right.

    Codes as `Draws` holds them: the candidates' u and v (read off A), and each query's u_B (read off B) and
    v_C (read off C); every query's own A is among the candidates. `corrupted` (CORRUPTED codes per query)
    is for gaussian corruption, where it is observed: a corrupted vector's signal coordinates are not ±scale.
    Without it (swap_signal), which modality was corrupted is not observed: a swapped signal looks valid.

    With n candidates out of `samples` N, and donors independent and uniform over all N, the posterior of
    candidate j is proportional to

        (1-p) [u_j = u_B][v_j = v_C] + p s Q_u [v_j = v_C] + p (1-s) Q_v [u_j = u_B],

    p = corruption_p, s = b_share, where Q_u = (#{m among the candidates: u_m = u_B} + (N-n) 2^-K) / N is the
    probability that a donor carries the query's u_B (a candidate donor's u is seen, any other's is uniform),
    and Q_v likewise. The answer is the largest posterior over its sum. Under gaussian corruption the
    posterior is uniform over the candidates that match what is left: u and v, v alone or u alone.
    """
    matches_u, matches_v = _counts(candidate_u, query_u), _counts(candidate_v, query_v)
    matches_both = _counts(pair_codes(candidate_u, candidate_v, bits), pair_codes(query_u, query_v, bits))
    if corrupted is not None:
        return 1.0 / np.choose(corrupted, [matches_both, matches_v, matches_u])
    p, s = corruption_p, b_share
    outside = (samples - len(candidate_u)) * 2.0**-bits
    b_swapped = p * s * (matches_u + outside) / samples  # weight of a candidate matching v alone
    c_swapped = p * (1 - s) * (matches_v + outside) / samples  # ... and u alone
    both = (1 - p) + b_swapped + c_swapped
    total = (1 - p) * matches_both + b_swapped * matches_v + c_swapped * matches_u
    partial = np.maximum(np.where(matches_v > matches_both, b_swapped, 0), np.where(matches_u > matches_both, c_swapped, 0))
    return np.where(matches_both > 0, both, partial) / total


def in_batches(n: int, batch: int = PAPER_EVAL_BATCH) -> list[slice]:
    """Consecutive batches of `batch` queries, the last one partial (the official test loader keeps it)."""
    return [slice(start, min(start + batch, n)) for start in range(0, n, batch)]


def realised_bounds(config: XnorConfig) -> dict[str, float]:
    """The Bayes bounds of the built test split, among all its A's and within each PAPER_EVAL_BATCH batch."""
    world = draws(config)
    test = world.splits["test"]
    known = {"corrupted": world.corrupted[test]} if config.corruption == "gaussian" else {}
    # What B and C show: the query's own bits, or the donor's in a swapped modality.
    shown_u = np.where(world.corrupted[test] == CORRUPT_B, world.u[world.donor[test]], world.u[test])
    shown_v = np.where(world.corrupted[test] == CORRUPT_C, world.v[world.donor[test]], world.v[test])
    settings = dict(samples=config.samples, bits=config.bits, corruption_p=config.corruption_p, b_share=config.b_share)

    def bound(rows: slice) -> np.ndarray:
        return bayes_accuracy(world.u[test][rows], world.v[test][rows], shown_u[rows], shown_v[rows], **settings,
                              **{k: v[rows] for k, v in known.items()})

    return {"all": float(bound(slice(None)).mean()),
            "inbatch": float(np.concatenate([bound(rows) for rows in in_batches(len(test))]).mean())}


class XnorBuilder(Builder):
    name = "xnor"
    version = "1.0.0"
    prefix = "xnor"
    fields = XNOR_FIELDS
    card = "xnor.md"
    Config = XnorConfig

    def split_sizes(self) -> dict[str, int]:
        return split_sizes(self.config.samples)

    def make_shard(self, spec: ShardSpec) -> Iterator[Row]:
        indices = draws(self.config).splits[spec.split][spec.start:spec.start + spec.count]
        vectors = generate(self.config, indices, shard_rng(self.config.seed, spec))
        columns = [npy_rows(vectors[m]) for m in XNOR_MODALITIES]
        for n, index in enumerate(indices):
            sample = {**{f: column[n] for f, column in zip(XNOR_FIELDS, columns)},
                      META: json.dumps(sample_meta(self.config, index)).encode()}
            yield Row(sample_key(spec.start + n), sample)

    def tool_versions(self) -> dict[str, str]:
        return {"numpy": np.__version__}

    def card_fields(self, manifest: dict) -> dict[str, str]:
        c = self.config
        bounds = realised_bounds(c)
        return {
            "bits": str(c.bits),
            "signal_dim": str(3 * c.bits),
            "dim": str(c.dim),
            "signal_scale": f"{c.signal_scale:g}",
            "distractor_std": f"{c.distractor_std:g}",
            "corruption_p": f"{c.corruption_p:g}",
            "b_share": f"{c.b_share:g}",
            "corruption": c.corruption,
            "bayes": f"{bounds['all']:.4f}",
            "bayes_inbatch": f"{bounds['inbatch']:.4f}",
            "batch": str(PAPER_EVAL_BATCH),
            "chance": f"{1 / split_sizes(c.samples)['test']:.6f}",
        }

    def card_metadata(self, manifest: dict) -> dict:
        c = self.config
        return {
            "pretty_name": f"Synthetic XNOR (Gated Symile, K={c.bits}, p={c.corruption_p:g}, {c.corruption})",
            "license": SYNTHETIC_LICENSE,
            "task_categories": ["feature-extraction"],
            "source_datasets": ["original"],
            "tags": ["polymodal", "multimodal", "contrastive-learning", "synthetic"],
        }

    def features(self) -> list[dict]:
        return npy_features(XNOR_FIELDS, "float32", {"index": "int64", "corrupted": "string", "donor": "int64"})
