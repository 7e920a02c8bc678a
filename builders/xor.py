"""The XOR synthetic dataset of Symile (arXiv 2411.01053, Section 2.2).

Per sample: a, b ~ Bernoulli(0.5)^d; one switch i ~ Bernoulli(p_hat) shared by
all d bits; c = a XOR b if i = 1, else c = a. b is pairwise independent of a
and of c, so only a model of the three-way interaction can predict it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from polymodal.builders.core.base import Builder, Row, ShardSpec, sample_key, shard_rng
from polymodal.builders.core.cards import SYNTHETIC_LICENSE
from polymodal.builders.core.options import check_values, float_list, option
from polymodal.builders.core.tarshards import npy_rows
from polymodal.builders.schema import META, XOR_FIELDS, npy_features


def draw_splits(draws: int) -> list[str]:
    """The paper scores `draws` freshly drawn test sets; each is its own split."""
    return [f"test_{k}" for k in range(draws)]


def bayes_accuracy(dim: int, p_hat: float) -> float:
    """Top-1 accuracy of the best predictor of b from (a, c): always guess a XOR c."""
    chance = 2.0**-dim
    return chance + p_hat * (1 - chance)


@dataclass(frozen=True)
class XorConfig:
    dim: int = option(5, "bits per modality, d", low=1)
    p_hat: float = option(
        0.5, "probability that c = a XOR b; a list or sweep such as 0,0.1,...,1 builds one dataset per value into "
        "OUT/p_hat=<value>", parse=lambda text: float_list(text), sweep=True, metavar="P[,P...]", high=1)
    train: int = option(10_000, "training samples")
    val: int = option(1_000, "validation samples")
    test: int = option(5_000, "samples per test draw")
    test_draws: int = option(10, "independent test sets, split test_0..test_{k-1}; the paper scores 10", low=1)
    seed: int = option(0, "master seed")
    shard_size: int = option(5_000, "samples per shard", low=1)

    def __post_init__(self):
        check_values(self)


class XorBuilder(Builder):
    name = "xor"
    version = "1.1.0"  # 1.1: each p_hat draws its own a and b
    prefix = "xor"
    fields = XOR_FIELDS
    card = "xor.md"
    Config = XorConfig

    def split_sizes(self) -> dict[str, int]:
        c = self.config
        return {"train": c.train, "val": c.val, **{s: c.test for s in draw_splits(c.test_draws)}}

    def make_shard(self, spec: ShardSpec) -> Iterator[Row]:
        # Each p_hat of a sweep draws afresh, as the paper's runs do: its bits key the shard's stream.
        rng = shard_rng(self.config.seed, spec, int(np.float64(self.config.p_hat).view(np.uint64)))
        a, b, c, i = generate(rng, spec.count, self.config.dim, self.config.p_hat)
        columns = [npy_rows(a), npy_rows(b), npy_rows(c)]
        meta = [json.dumps({"i": 0}).encode(), json.dumps({"i": 1}).encode()]
        for n in range(spec.count):
            sample = {**{f: column[n] for f, column in zip(XOR_FIELDS, columns)}, META: meta[i[n]]}
            yield Row(sample_key(spec.start + n), sample)

    def tool_versions(self) -> dict[str, str]:
        return {"numpy": np.__version__}

    def card_fields(self, manifest: dict) -> dict[str, str]:
        c = self.config
        return {
            "dim": str(c.dim),
            "p_hat": f"{c.p_hat:g}",
            "bayes": f"{bayes_accuracy(c.dim, c.p_hat):.4f}",
            "chance": f"{2.0 ** -c.dim:.4f}",
            "test_draws": str(c.test_draws),
        }

    def card_metadata(self, manifest: dict) -> dict:
        return {
            "pretty_name": f"XOR synthetic (Symile, d={self.config.dim}, p_hat={self.config.p_hat:g})",
            "license": SYNTHETIC_LICENSE,
            "task_categories": ["feature-extraction"],
            "source_datasets": ["original"],
            "tags": ["polymodal", "multimodal", "contrastive-learning", "synthetic"],
        }

    def features(self) -> list[dict]:
        return npy_features(XOR_FIELDS, "int8", {"i": "int64"})


def generate(rng: np.random.Generator, n: int, dim: int, p_hat: float):
    """Draw n samples; returns int8 arrays a, b, c of shape (n, dim) and the switch i of shape (n,)."""
    a = rng.integers(0, 2, size=(n, dim), dtype=np.int8)
    b = rng.integers(0, 2, size=(n, dim), dtype=np.int8)
    i = (rng.random(n) < p_hat).astype(np.int8)
    c = np.where(i[:, None] == 1, a ^ b, a).astype(np.int8)
    return a, b, c, i
