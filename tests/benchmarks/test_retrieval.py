"""Top-k and target ranks, chunked over queries and candidates, against the full score matrix, ties included;
gap metrics in results. Two ranks against one: test_distributed_eval.py."""

import pytest
import torch

from polymodal.benchmarks.protocols.gap import gap_evaluation
from polymodal.benchmarks.protocols.retrieval import chunks, merge, recall_at, shard, stable_topk, target_ranks, topk


def scorer(queries, candidates, calls=None):
    def scores(rows, cols):
        if calls is not None:
            calls.append((rows.stop - rows.start, cols.stop - cols.start))
        return queries[rows] @ candidates[cols].T

    return scores


def brute_topk(full: torch.Tensor, k: int):
    """The reference: a stable descending sort of the whole matrix, ties to the lower index."""
    values, indices = full.sort(dim=1, descending=True, stable=True)
    return values[:, :k], indices[:, :k]


def brute_ranks(full: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    order = full.sort(dim=1, descending=True, stable=True).indices
    return (order == targets[:, None]).nonzero()[:, 1]


@pytest.fixture(params=["ties", "distinct"])
def embeddings(request):
    """Integer entries, so that every chunking sums exactly: scores compare bit for bit with the full matrix."""
    g = torch.Generator().manual_seed(0)
    if request.param == "ties":  # entries in {-1, 0, 1} over 3 dims: scores take few values, ties everywhere
        q, c = (torch.randint(-1, 2, (n, 3), generator=g).float() for n in (37, 53))
        c[10:20] = c[0]  # a block of equal candidates, straddling any k
    else:  # entries up to 1000 over 16 dims: ties are rare
        q, c = (torch.randint(-1000, 1001, (n, 16), generator=g).double() for n in (37, 53))
    return q, c


@pytest.mark.parametrize("chunk,candidate_chunk", [(1, 1), (5, 7), (37, 10), (1000, 1000)])
@pytest.mark.parametrize("k", [1, 3, 10, 53, 60])
def test_chunked_topk_equals_the_full_matrix(embeddings, chunk, candidate_chunk, k):
    q, c = embeddings
    calls = []
    values, indices = topk(scorer(q, c, calls), len(q), len(c), k, chunk=chunk, candidate_chunk=candidate_chunk)
    want_values, want_indices = brute_topk(q @ c.T, k)
    assert torch.equal(indices, want_indices) and torch.equal(values, want_values)
    # Never more than a block at once, and every score computed exactly once.
    assert max(r for r, _ in calls) <= chunk and max(n for _, n in calls) <= candidate_chunk
    assert sum(r * n for r, n in calls) == len(q) * len(c)


@pytest.mark.parametrize("chunk,candidate_chunk", [(1, 1), (8, 10), (1000, 1000)])
def test_target_ranks_equal_the_full_matrix_and_agree_with_topk(embeddings, chunk, candidate_chunk):
    q, c = embeddings
    targets = torch.randint(len(c), (len(q),), generator=torch.Generator().manual_seed(1))
    calls = []
    ranks = target_ranks(scorer(q, c, calls), targets, len(c), chunk=chunk, candidate_chunk=candidate_chunk)
    assert torch.equal(ranks, brute_ranks(q @ c.T, targets))
    assert max(r for r, _ in calls) <= chunk and max(n for _, n in calls) <= candidate_chunk
    _, top = topk(scorer(q, c), len(q), len(c), 5, chunk=chunk, candidate_chunk=candidate_chunk)
    assert torch.equal((top == targets[:, None]).any(1), ranks < 5)  # in the top 5 exactly when ranked < 5
    assert torch.equal(recall_at(ranks, (5,))[5], (ranks < 5).double())


def test_equal_scores_rank_the_lower_index_first():
    flat = torch.zeros(4, 6)
    ranks = target_ranks(lambda rows, cols: flat[rows, cols], torch.tensor([0, 1, 5, 2]), 6, candidate_chunk=4)
    assert ranks.tolist() == [0, 1, 5, 2]
    assert stable_topk(flat, 3)[1].tolist() == [[0, 1, 2]] * 4
    assert topk(lambda rows, cols: flat[rows, cols], 4, 6, 3, candidate_chunk=2)[1].tolist() == [[0, 1, 2]] * 4


def test_merge_keeps_the_best_and_breaks_ties_by_index():
    values, indices = merge(torch.tensor([[1.0, 3.0, 3.0, 2.0]]), torch.tensor([[0, 9, 4, 7]]), 3)
    assert indices.tolist() == [[4, 9, 7]] and values.tolist() == [[3.0, 3.0, 2.0]]


@pytest.mark.parametrize("n,world", [(53, 2), (53, 3), (1, 2), (0, 2), (8, 8)])
def test_shards_cover_the_candidates_once_in_order(n, world):
    shares = [shard(n, rank, world) for rank in range(world)]
    assert [i for s in shares for i in range(s.start, s.stop)] == list(range(n))
    sizes = [s.stop - s.start for s in shares]
    assert max(sizes) - min(sizes) <= 1


def test_edge_cases():
    assert list(chunks(0)) == [] and [s.stop for s in chunks(5, 2)] == [2, 4, 5]
    assert [(s.start, s.stop) for s in chunks(3, 2, start=10)] == [(10, 12), (12, 13)]
    with pytest.raises(ValueError):
        list(chunks(5, 0))
    values, indices = topk(lambda rows, cols: torch.zeros(0, 3), 0, 3, 2)
    assert values.numel() == 0 and indices.dtype == torch.long
    values, indices = topk(lambda rows, cols: torch.zeros(2, cols.stop - cols.start), 2, 0, 2)  # no candidates
    assert values.shape == (2, 0) and indices.shape == (2, 0)
    with pytest.raises(ValueError, match="targets must index the 3 candidates"):
        target_ranks(lambda rows, cols: torch.zeros(1, 3)[:, cols], torch.tensor([3]), 3)


def test_gap_evaluation_averages_draws_with_a_standard_error():
    g = torch.Generator().manual_seed(0)
    draws = [{m: torch.randn(20, 4, generator=g) for m in "abc"} for _ in range(3)]
    several, one = gap_evaluation(draws), gap_evaluation(draws[:1])
    assert set(several) == set(one) and "gap_centroid/a-b" in one and "uniformity/c" in one and "alignment/b-c" in one
    assert all(v["n"] == 20 and "stderr" not in v for v in one.values())
    for name, v in several.items():
        values = torch.tensor([gap_evaluation([d])[name]["value"] for d in draws], dtype=torch.float64)
        assert v["n"] == 3 and v["value"] == pytest.approx(values.mean().item())
        assert v["stderr"] == pytest.approx((values.std() / 3**0.5).item())  # torch's std is the n-1 one


def test_xor_results_carry_gap_metrics_over_the_test_draws(tmp_path):
    from polymodal.benchmarks.runs import evaluate_run, train_run
    from polymodal.benchmarks.tasks.base import TrainConfig
    from polymodal.builders.core.runner import build
    from polymodal.builders.xor import XorBuilder, XorConfig

    build(XorBuilder(XorConfig(train=64, val=32, test=100, test_draws=3, shard_size=100)), tmp_path / "xor", progress=False)
    train_run("xor", "symile", tmp_path / "xor", tmp_path / "run", TrainConfig(epochs=1, batch_size=32), progress=False)
    metrics = evaluate_run(tmp_path / "run")["metrics"]  # validated against the leaderboard's schema
    assert {"gap_centroid/a-b", "alignment/b-c", "uniformity/c"} <= set(metrics) and metrics["acc1"]["n"] == 3
    gap = [m for m in metrics if m.split("/")[0] in ("gap_centroid", "alignment", "uniformity")]
    assert gap and all(metrics[m]["n"] == 3 and metrics[m]["stderr"] is not None for m in gap)
    # The robustness sweep scores the draws pooled: n is their queries.
    assert metrics["robustness/noisy/a@1"]["n"] == 300
