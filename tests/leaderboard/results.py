"""Result files as the harness writes them, for the leaderboard's tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from polymodal.leaderboard import ModelCard
from polymodal.leaderboard.outcomes import draws_outcome, hits_outcome

XOR_PLOT = {"x": "p_hat", "symbol": r"$\hat{p}$"}  # what the xor task writes
CREATED = "2025-11-22T08:00:00Z"


def make_result(model: str = "symile", p_hat: float = 0.5, value: float = 0.5, stderr: float | None = 0.01,
                created: str = CREATED, task: str = "xor", version: str = "1.0", plot: dict | None = XOR_PLOT,
                source: str = "polymodal", revision: str | None = None, dataset_id: str | None = None,
                digest: str | None = None, label: str | None = None, outcomes: dict | None = None,
                params: dict | None = None, **card) -> dict:
    model_card = ModelCard(name=model, source=source, revision=revision, parameters=card.pop("parameters", 291),
                           modalities=card.pop("modalities", ["a", "b", "c"]), license=card.pop("license", "MIT"),
                           config={"objective": model, "d_model": 16}, **card)
    metric = {"value": value, "n": 10} | ({} if stderr is None else {"stderr": stderr})
    if outcomes is not None:
        metric |= {"outcomes": outcomes, "n": outcomes.get("n", len(outcomes.get("values", [])))}
    dataset = {"id": dataset_id or f"ds-{p_hat}", "builder": "xor", "builder_version": "1.0.0",
               "label": label or f"p_hat={p_hat}", "params": params or {"p_hat": p_hat, "dim": 5}}
    if digest:
        dataset["content_digest"] = digest
    return {
        "schema_version": 1,
        "task": {"name": task, "version": version},
        "dataset": dataset,
        "model": model_card.model_dump(),
        "metrics": {"acc1": metric, "alignment/a-b": {"value": 0.25}},
        "primary_metric": "acc1",
        "references": {"bayes_bound": 0.03125 + 0.5 * p_hat, "chance": 0.03125},
        "seed": 0,
        "code_version": {"package": "0.1.0", "git_commit": None},
        "hardware": {"device": "cpu", "device_name": "x86_64", "num_devices": 1,
                     "platform": "Linux", "torch": "2.13.0", "python": "3.11.7"},
        "wall_time_s": 12.3,
        "created": created,
    } | ({} if plot is None else {"plot": plot})


SWEEP_CORRUPTIONS = ("missing-own", "missing-mean", "misaligned", "noisy")  # as benchmarks/protocols/robustness.py
SWEEP_RATES = (0.0, 0.25, 0.5, 0.75, 1.0)


def sweep_metrics(value, modalities=("a", "c"), corruptions=SWEEP_CORRUPTIONS, n: int = 100) -> dict:
    """The robustness sweep's metrics as the harness writes them: robustness/{corruption}/{m}@{p} is
    `value(corruption, m, p)`."""
    return {f"robustness/{c}/{m}@{p:g}": {"value": value(c, m, p), "n": n}
            for c in corruptions for m in modalities for p in SWEEP_RATES}


def with_sweep(sweep, **fields) -> dict:
    """A result that carries the robustness sweep `sweep(corruption, modality, p)` besides its other metrics."""
    result = make_result(**fields)
    result["metrics"] |= sweep_metrics(sweep)
    return result


def with_hits(hits, **fields) -> dict:
    """A result whose acc1 is the mean of per-query `hits`, which it keeps."""
    hits = np.asarray(hits, dtype=float)
    return make_result(value=float(hits.mean()), stderr=None, outcomes=hits_outcome(hits), **fields)


def with_draws(draws, **fields) -> dict:
    return make_result(value=float(np.mean(draws)), stderr=None, outcomes=draws_outcome(draws), **fields)


def write(directory: Path, name: str, content: dict | list | str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


SAMPLE = {
    "symile": {0.0: 0.04, 0.5: 0.30, 1.0: 0.55},
    "clip": {0.0: 0.03, 0.5: 0.10, 1.0: 0.33},
    "worst": {0.0: 0.02, 0.5: 0.05},
}


def write_sample(directory: Path) -> dict[str, dict[float, float]]:
    """Three models on three datasets; `worst` skips p_hat=1.0. Returns the scores written."""
    for model, by_p in SAMPLE.items():
        for p_hat, value in by_p.items():
            write(directory, f"{model}/{p_hat}.json", make_result(model=model, p_hat=p_hat, value=value))
    return SAMPLE
