"""Training on in-memory tensors, keeping the epoch with the lowest validation loss."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import torch
from tqdm import tqdm

from benchmarks.tasks.base import TrainConfig

VAL_SEED_OFFSET = 1_000_003  # validation draws its own fixed negatives, so epochs compare fairly


def batch_loss(model, batch: dict[str, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
    embeddings = {m: model.encode(m, x) for m, x in batch.items()}
    return model.loss(embeddings, generator=generator)


@torch.no_grad()
def mean_loss(model, data: dict[str, torch.Tensor], batch_size: int, seed: int) -> float:
    model.eval()
    generator = torch.Generator().manual_seed(seed + VAL_SEED_OFFSET)
    n = len(next(iter(data.values())))
    total = 0.0
    for start in range(0, n, batch_size):
        batch = {m: x[start : start + batch_size] for m, x in data.items()}
        total += batch_loss(model, batch, generator).item() * len(next(iter(batch.values())))
    return total / n


def fit(model, train: dict[str, torch.Tensor], val: dict[str, torch.Tensor], config: TrainConfig,
        log_path: Path | None = None, progress: bool = True) -> dict:
    """Train with AdamW; restore the best-validation weights. Returns a summary for the run record."""
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)  # batch order and Symile's negatives
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    n = len(next(iter(train.values())))
    best = {"val_loss": float("inf"), "epoch": -1, "state": None}
    log = open(log_path, "w") if log_path else None
    began = time.perf_counter()
    bar = tqdm(range(config.epochs), desc="train", unit="epoch", disable=not progress)
    try:
        for epoch in bar:
            model.train()
            epoch_began, seen, total = time.perf_counter(), 0, 0.0
            order = torch.randperm(n, generator=generator)
            for start in range(0, n, config.batch_size):
                index = order[start : start + config.batch_size]
                loss = batch_loss(model, {m: x[index] for m, x in train.items()}, generator)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                seen += len(index)
                total += loss.item() * len(index)
            rate = seen / (time.perf_counter() - epoch_began)
            val_loss = mean_loss(model, val, config.batch_size, config.seed)
            if val_loss < best["val_loss"]:
                best = {"val_loss": val_loss, "epoch": epoch, "state": copy.deepcopy(model.state_dict())}
            record = {"epoch": epoch, "train_loss": total / seen, "val_loss": val_loss, "samples_per_s": rate}
            bar.set_postfix(loss=f"{total / seen:.3f}", val=f"{val_loss:.3f}", samples_s=f"{rate:,.0f}")
            if log:
                log.write(json.dumps(record) + "\n")
    finally:
        bar.close()
        if log:
            log.close()
    model.load_state_dict(best["state"])
    return {"best_epoch": best["epoch"], "best_val_loss": best["val_loss"], "train_seconds": time.perf_counter() - began}
