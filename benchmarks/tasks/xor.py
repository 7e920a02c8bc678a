"""XOR (Symile, Section 2.2): predict b from (a, c) among all 2^d binary vectors.

Protocol 1.0: train on `train`, keep the epoch with the lowest validation
loss, then score top-1 accuracy on each independent test draw `test_k`;
report their mean and standard error (the paper's "bootstrap").
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from scipy import stats

from polymodal.benchmarks.data import shard_source
from polymodal.benchmarks.protocols import robustness
from polymodal.benchmarks.protocols.gap import EVAL_BATCH, GAP_METRICS, gap_evaluation
from polymodal.benchmarks.protocols.missing import absent_scoring, train_means
from polymodal.benchmarks.streaming import Source, embed_source
from polymodal.benchmarks.tasks.base import Evaluation, Task, TrainConfig
from polymodal.builders.xor import bayes_accuracy
from polymodal.leaderboard.declarations import Metric, Reference
from polymodal.leaderboard.outcomes import draws_outcome

MODALITIES = ("a", "b", "c")


def all_bit_vectors(dim: int) -> np.ndarray:
    """Every binary vector of length dim; row k holds the bits of k, least significant first."""
    return ((np.arange(2**dim)[:, None] >> np.arange(dim)) & 1).astype(np.float32)


def bits_to_index(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.int64) << np.arange(bits.shape[1])).sum(axis=1)


def as_float32(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {m: v.astype(np.float32) for m, v in arrays.items()}  # the shards hold bits as int8


class XorTask(Task):
    name = "xor"
    version = "1.0"
    builder = "xor"
    primary_metric = "acc1"
    metrics = (
        Metric("acc1", 0, 1, True, "top-1 accuracy of b predicted from (a, c) among all 2^d bit vectors, "
               "mean over the test draws"),
        *GAP_METRICS,
        *robustness.METRICS,
    )
    references: ClassVar[dict[str, Reference]] = {
        "bayes_bound": Reference("Bayes bound", "the best accuracy any predictor of b from (a, c) can reach"),
        "chance": Reference("chance", "1/2^d: b guessed uniformly"),
    }
    splits = ("train", "val", "test_0")  # and the other draws, which --test-draws sets
    plot = {"x": "p_hat", "symbol": r"$\hat{p}$"}  # Symile's Figure 2
    # Matmuls this small run fastest on one thread; more only add OpenMP overhead.
    train_defaults = TrainConfig(epochs=20, batch_size=1000, lr=0.05, weight_decay=0.01, threads=1)
    model_defaults = {"d_model": 16}

    def inputs(self, manifest: dict) -> dict[str, int]:
        return {m: manifest["config"]["dim"] for m in MODALITIES}

    def source(self, data_dir, split: str) -> Source:
        return shard_source(data_dir, split, list(MODALITIES), as_float32)

    def tiny_manifest(self) -> dict:
        return {"config": {"dim": 5}}

    def tiny_batch(self, n: int) -> dict[str, torch.Tensor]:
        return {m: torch.randint(0, 2, (n, w)).float() for m, w in self.inputs(self.tiny_manifest()).items()}

    def dataset_params(self, manifest: dict) -> dict:
        config = manifest["config"]
        return {"p_hat": config["p_hat"], "dim": config["dim"]}

    def dataset_label(self, manifest: dict) -> str:
        return f"p_hat={manifest['config']['p_hat']:g}"

    @torch.no_grad()
    def evaluate(self, model, data_dir, manifest: dict) -> Evaluation:
        dim = manifest["config"]["dim"]
        candidates = model.encode("b", torch.from_numpy(all_bit_vectors(dim)))

        def hits(queries: dict[str, torch.Tensor], truth: np.ndarray) -> torch.Tensor:
            predicted = model.score(queries, "b", candidates).argmax(dim=1).numpy()
            return torch.from_numpy(predicted == truth)

        draws = sorted((s for s in manifest["splits"] if s.startswith("test_")), key=lambda s: int(s[5:]))
        accuracies, embedded, truths = [], [], []
        for split in draws:
            draw = self.source(data_dir, split)
            embedded.append(embed_source(model, draw, EVAL_BATCH))
            truths.append(bits_to_index(draw.column("b")))
            accuracies.append(float(hits({m: embedded[-1][m] for m in ("a", "c")}, truths[-1]).double().mean()))
        k = len(accuracies)
        stderr = float(stats.sem(accuracies)) if k > 1 else None
        acc1 = {"value": float(np.mean(accuracies)), "stderr": stderr, "n": k, "outcomes": draws_outcome(accuracies)}
        # The sweep scores the draws pooled: every query against the same 2^d candidates.
        pooled = {m: torch.cat([e[m] for e in embedded]) for m in ("a", "c")}
        truth = np.concatenate(truths)
        means = train_means(model, self.source(data_dir, "train"))
        metrics = {"acc1": acc1, **gap_evaluation(embedded),
                   **robustness.robustness_metrics(lambda q: hits(q, truth), model, pooled, means)}
        references = {"bayes_bound": bayes_accuracy(dim, manifest["config"]["p_hat"]), "chance": 2.0**-dim}
        return Evaluation(metrics, references, scoring=absent_scoring(model))
