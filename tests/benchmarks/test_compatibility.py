"""docs/compatibility.md: every model x task cell runs, as it says, on a tiny batch through the harness's loss;
and it lists exactly the registered tasks and models."""

import itertools
import re
from contextlib import nullcontext

import pytest
import torch

from polymodal.baselines.models import MODELS
from polymodal.benchmarks.tasks import TASKS, load_task
from polymodal.benchmarks.training import batch_loss
from tests.helpers import REFERENCE_MODELS, ROOT

pytestmark = pytest.mark.usefixtures("one_thread")

DOC = ROOT / "docs" / "compatibility.md"
ROWS = 6


def doc_matrix() -> dict[tuple[str, str], bool]:
    """(model, task) -> whether the doc says it runs, from the first table (header `| model | task ... |`)."""
    lines = DOC.read_text().splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith("| model |"))
    tasks = [cell.strip() for cell in lines[start].strip("|").split("|")][1:]
    matrix = {}
    for line in itertools.takewhile(lambda line: line.startswith("|"), lines[start + 2:]):
        model, *cells = (cell.strip() for cell in line.strip("|").split("|"))
        for task, cell in zip(tasks, cells, strict=True):
            if cell != "runs" and not re.match(r"no: \S", cell):
                raise AssertionError(f"{DOC.name}: cell ({model}, {task}) is {cell!r}, neither 'runs' nor 'no: why'")
            matrix[model, task] = cell == "runs"
    return matrix


def run_cell(model_name: str, task_name: str) -> None:
    """Build, one training step through the harness's loss, then every score and fill the tasks ask for."""
    task = load_task(task_name)
    inputs = task.inputs(task.tiny_manifest())
    torch.manual_seed(0)
    model = MODELS[model_name](inputs, **task.model_config(model_name))
    batch = task.tiny_batch(ROWS)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss = batch_loss(model, batch, torch.Generator().manual_seed(0), nullcontext())
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    model.eval()
    with torch.no_grad():
        embeddings = {m: model.encode(m, x) for m, x in batch.items()}
        for target in inputs:
            others = [m for m in inputs if m != target]
            for queries in (others, others[:1]):
                scores = model.score({m: embeddings[m] for m in queries}, target, embeddings[target])
                assert scores.shape == (ROWS, ROWS) and torch.isfinite(scores).all()
            filled = getattr(model, "fill_missing", lambda *a: None)({m: embeddings[m] for m in others}, target)
            assert filled is None or (filled.shape == embeddings[target].shape and torch.isfinite(filled).all())


def test_the_doc_lists_every_registered_task_and_model():
    assert {task for _, task in doc_matrix()} == set(TASKS)
    assert sorted(doc_matrix()) == sorted(itertools.product(REFERENCE_MODELS, TASKS))


@pytest.mark.parametrize(("model", "task"), sorted(doc_matrix()))
def test_each_cell_runs_as_the_doc_says(model, task):
    # Every cell says it runs; a cell that says otherwise needs a test of how it is refused.
    assert doc_matrix()[model, task], f"{model} on {task}: the doc says it does not run"
    run_cell(model, task)
