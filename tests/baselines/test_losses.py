"""The baseline losses and scorers, cross-checked against the official Symile package,
brute-force loops, and each other (local-row shards against the whole batch)."""

import datetime
import itertools
import math

import pytest
import symile
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F

from polymodal.baselines import (
    LogitScale,
    clip_loss,
    clip_scores,
    gather_with_grad,
    infonce,
    mip,
    mip_scores,
    symile_loss,
)

TOL = dict(rtol=1e-9, atol=1e-9)  # float64 throughout


def unit(m: int, n: int, d: int = 6, seed: int = 0) -> list[torch.Tensor]:
    """m row-aligned (n, d) float64 leaves on the unit sphere."""
    g = torch.Generator().manual_seed(seed)
    return [F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1).requires_grad_() for _ in range(m)]


def value_and_grads(loss: torch.Tensor, leaves: list[torch.Tensor]) -> list[torch.Tensor]:
    return [loss.detach(), *torch.autograd.grad(loss, leaves)]


def assert_all_close(ours: list[torch.Tensor], reference: list[torch.Tensor]) -> None:
    assert len(ours) == len(reference)
    for a, b in zip(ours, reference):
        torch.testing.assert_close(a, b, **TOL)


@pytest.mark.parametrize(("negatives", "m", "n"), [("n", 3, 9), ("n", 4, 9), ("n_squared", 3, 9), ("n_squared", 4, 5)])
def test_symile_matches_the_official_package(negatives, m, n):
    embeddings = unit(m, n)
    scale = torch.tensor(4.0, dtype=torch.float64, requires_grad=True)
    leaves = [*embeddings, scale]
    torch.manual_seed(3)  # the same O(N) permutations for both
    official = value_and_grads(symile.Symile(negatives)(embeddings, scale), leaves)
    torch.manual_seed(3)
    ours = value_and_grads(symile_loss(embeddings, scale, negatives), leaves)
    assert_all_close(ours, official)


@pytest.mark.parametrize("chunk_size", [1, 7, 30, 100, 300, None, 10**6])
def test_n_squared_is_independent_of_the_chunking(chunk_size):
    # N=10: 30 logits split rows 3+3+3+1, 300 split middle rows 3+3+3+1.
    embeddings = unit(3, 10)
    scale = torch.tensor(5.0, dtype=torch.float64, requires_grad=True)
    leaves = [*embeddings, scale]
    official = value_and_grads(symile.Symile("n_squared")(embeddings, scale), leaves)
    ours = value_and_grads(symile_loss(embeddings, scale, "n_squared", chunk_size=chunk_size), leaves)
    assert_all_close(ours, official)


def test_n_squared_keeps_nothing_quadratic_for_backward():
    n, d = 64, 8
    embeddings = unit(3, n, d)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        loss = symile_loss(embeddings, 2.0, "n_squared", chunk_size=n)
    assert saved and max(saved) <= n * d  # the official code keeps N^3 logits
    loss.backward()
    assert all(e.grad is not None for e in embeddings)


def test_two_modality_symile_with_every_negative_is_infonce():
    a, b = unit(2, 9, seed=1)
    ours = value_and_grads(symile_loss([a, b], 3.0, "n_squared", chunk_size=20), [a, b])
    assert_all_close(ours, value_and_grads(infonce(a, b, 3.0), [a, b]))


def brute_force_clip(embeddings: list[torch.Tensor], scale: float) -> torch.Tensor:
    """Σ over pairs of the mean of both directions' per-row -log softmax, one row at a time."""
    n = len(embeddings[0])
    total = 0.0
    for x, y in itertools.combinations(embeddings, 2):
        for u, v in ((x, y), (y, x)):
            for i in range(n):
                logits = torch.stack([scale * (u[i] * v[j]).sum() for j in range(n)])
                total = total - (logits[i] - torch.log(torch.exp(logits).sum())) / (2 * n)
    return total


def test_clip_loss_matches_a_brute_force_loop():
    embeddings = unit(3, 7)
    ours = value_and_grads(clip_loss(embeddings, 2.5), embeddings)
    assert_all_close(ours, value_and_grads(brute_force_clip(embeddings, 2.5), embeddings))


@pytest.mark.parametrize("negatives", ["clip", "n", "n_squared"])
def test_local_rows_average_to_the_global_loss(negatives):
    """What DDP optimises (the mean of the per-rank losses over their own rows)
    equals the single-process loss, in value and gradient."""
    ranks, n = 3, 4
    embeddings = unit(3, ranks * n)
    scale = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    leaves = [*embeddings, scale]

    def loss(rows):
        if negatives == "clip":
            return clip_loss(embeddings, scale, rows)
        # Every rank seeds its generator alike, so all draw the same permutations.
        generator = torch.Generator().manual_seed(11)
        return symile_loss(embeddings, scale, negatives, rows, generator, chunk_size=10)

    shards = [loss(slice(k * n, (k + 1) * n)) for k in range(ranks)]
    assert_all_close(value_and_grads(sum(shards) / ranks, leaves), value_and_grads(loss(None), leaves))


def test_o_n_negatives_come_from_the_generator():
    embeddings = unit(3, 16)
    state = torch.get_rng_state()
    first = symile_loss(embeddings, 1.0, generator=torch.Generator().manual_seed(0))
    again = symile_loss(embeddings, 1.0, generator=torch.Generator().manual_seed(0))
    other = symile_loss(embeddings, 1.0, generator=torch.Generator().manual_seed(1))
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is untouched
    assert first == again and first != other


def test_mip_is_the_multilinear_inner_product():
    x, y, z = (t.detach() for t in unit(3, 5))
    expected = [sum(float(x[i, k] * y[i, k] * z[i, k]) for k in range(x.shape[1])) for i in range(5)]
    torch.testing.assert_close(mip(x, y, z), torch.tensor(expected, dtype=torch.float64), **TOL)


def test_mip_scores_match_the_official_similarity():
    queries = [t.detach() for t in unit(3, 6, seed=2)]
    candidates = unit(1, 11, seed=3)[0].detach()
    official = symile.MIPSimilarity()(candidates, queries)
    torch.testing.assert_close(mip_scores(queries, candidates), official, **TOL)
    torch.testing.assert_close(mip_scores(queries, candidates, scale=2.0), 2 * official, **TOL)


def test_clip_scores_sum_the_pairwise_dot_products():
    queries = [t.detach() for t in unit(3, 6, seed=2)]
    candidates = unit(1, 11, seed=3)[0].detach()
    expected = [[sum(float(q[i] @ candidates[j]) for q in queries) for j in range(11)] for i in range(6)]
    torch.testing.assert_close(clip_scores(queries, candidates), torch.tensor(expected, dtype=torch.float64), **TOL)


def test_clip_scores_rank_like_the_full_clip_logits():
    """The pairs without the target add the same amount to every candidate."""
    x, y, c = (t.detach() for t in unit(3, 5, seed=4))
    full = torch.stack([torch.stack([x[i] @ y[i] + x[i] @ c[j] + y[i] @ c[j] for j in range(5)]) for i in range(5)])
    shift = full - clip_scores([x, y], c)
    torch.testing.assert_close(shift, shift[:, :1].expand_as(shift), **TOL)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda e: symile_loss(e, 1.0, "n_cubed"), "negatives"),
        (lambda e: symile_loss(e[:1], 1.0), "at least 2"),
        (lambda e: clip_loss([e[0], e[1][:3]], 1.0), "same"),
        (lambda e: clip_loss(e, 1.0, rows=slice(0, 8, 2)), "contiguous"),
        (lambda e: symile_loss(e, 1.0, rows=slice(5, 5)), "non-empty"),
    ],
)
def test_bad_arguments_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call(unit(3, 8))


def test_logit_scale():
    scale = LogitScale()
    assert scale().item() == pytest.approx(1 / 0.07)
    scale().backward()
    assert scale.log_scale.grad.item() == pytest.approx(1 / 0.07)
    assert LogitScale(math.log(500), max_value=100)().item() == pytest.approx(100)
    assert not LogitScale(learnable=False).log_scale.requires_grad


def _rank(rank: int, world: int, store: str, seed: int, out: str) -> None:
    """One DDP rank: gather its rows with gradient, take the loss over its own."""
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{store}", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=60)
    )
    try:
        local = [e[rank * 4 : (rank + 1) * 4].detach().requires_grad_() for e in unit(3, world * 4, seed=seed)]
        gathered = [gather_with_grad(e) for e in local]
        rows = gathered[0][1]
        generator = torch.Generator().manual_seed(5)
        loss = symile_loss([g for g, _ in gathered], 2.0, "n", rows, generator)
        loss.backward()
        result = {"rows": (rows.start, rows.stop), "loss": loss.detach(), "grads": [e.grad for e in local]}
        torch.save(result, f"{out}.{rank}")
        with pytest.raises(ValueError, match="same number of rows"):
            gather_with_grad(torch.zeros(1 + rank, 2))
    finally:
        torch.distributed.destroy_process_group()


def test_gather_with_grad_across_two_processes(tmp_path):
    world = 2
    mp.spawn(_rank, args=(world, str(tmp_path / "store"), 8, str(tmp_path / "out")), nprocs=world)
    results = [torch.load(tmp_path / f"out.{r}") for r in range(world)]
    embeddings = unit(3, world * 4, seed=8)
    full = symile_loss(embeddings, 2.0, "n", generator=torch.Generator().manual_seed(5))
    grads = torch.autograd.grad(full, embeddings)
    torch.testing.assert_close(sum(r["loss"] for r in results) / world, full.detach(), **TOL)
    for rank, result in enumerate(results):
        assert result["rows"] == (rank * 4, (rank + 1) * 4)
        # Each rank's rows receive every rank's loss gradient (a sum); DDP then
        # divides by the world size, recovering the gradient of the global loss.
        for grad, expected in zip(result["grads"], grads):
            torch.testing.assert_close(grad / world, expected[slice(*result["rows"])], **TOL)
    assert gather_with_grad(embeddings[0])[1] == slice(0, world * 4)  # no process group: the identity
