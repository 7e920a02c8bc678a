"""Training from streamed splits: AdamW, best-validation selection, DDP, exact resume, mid-epoch too.

One code path serves one CPU process and `torchrun` over GPUs. The training split streams a shard at a
time (benchmarks.streaming): each epoch's global batches follow from the seed, the epoch and the number of
streams, and each rank runs its share of the streams, which is its part of every global batch. The loss
gathers every rank's embeddings with gradient, so two ranks train exactly like one process at as many streams.

A checkpoint is written after every epoch, and every `Logging.checkpoint_every` optimizer steps within one,
into the run folder:
    step-NNNNNNNN.safetensors  weights at the latest checkpoint
    best.safetensors   weights of the best validation epoch so far
    trainer_state.pt   optimizer, RNG and bookkeeping; tensors and plain
                       containers only, loaded with weights_only=True
    train_log.jsonl    one line per epoch: losses, samples/s, samples/s per device
    train_steps.jsonl  one line every `log_every` steps: step, epoch, lr, loss and its named terms, each
                       logit scale, samples/s (per device too) and a Unix timestamp
Resuming from it continues bit for bit where the run stopped, within an epoch from the batch it reached. The learning rate follows
`TrainConfig.lr_schedule` per optimizer step; `--report-to` also sends the step lines
to TensorBoard or W&B (benchmarks.reporting).
"""

from __future__ import annotations

import dataclasses
import io
import json
import pickle
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import load_model, save_model

from polymodal.baselines.distributed import gather_with_grad
from polymodal.baselines.logit_scale import TEMPERATURE_MODULES
from polymodal.benchmarks.lr_schedules import lr_scheduler
from polymodal.benchmarks.reporting import REPORTERS
from polymodal.benchmarks.streaming import Order, PieceView, Source, epoch_batches, ordered_batches
from polymodal.benchmarks.tasks.base import TrainConfig
from polymodal.builders.core.tarshards import write_atomic
from polymodal.progress import progress_bar

VAL_SEED_OFFSET = 1_000_003  # validation draws its own fixed negatives, so epochs compare fairly
BEST, STATE, LOG, STEPS = "best.safetensors", "trainer_state.pt", "train_log.jsonl", "train_steps.jsonl"


@dataclass(frozen=True)
class Logging:
    """What a run writes besides its epochs, none of which changes what it trains: a line every ``every``
    optimizer steps, also sent to the reporters named in ``report_to`` (keys of REPORTERS), and a checkpoint
    every ``checkpoint_every`` steps within an epoch (0: at epoch ends only)."""

    every: int = 50
    report_to: tuple[str, ...] = ()
    checkpoint_every: int = 1000


@dataclass(frozen=True)
class Placement:
    """Where this process trains: its device, and its rank among `world` processes."""

    device: torch.device
    rank: int = 0
    world: int = 1

    @classmethod
    def detect(cls) -> Placement:
        """CUDA when present; the rank and world size of an initialised process group (torchrun)."""
        if dist.is_available() and dist.is_initialized():
            rank, world = dist.get_rank(), dist.get_world_size()
        else:
            rank, world = 0, 1
        if torch.cuda.is_available():
            return cls(torch.device("cuda", rank % torch.cuda.device_count()), rank, world)
        return cls(torch.device("cpu"), rank, world)

    @property
    def main(self) -> bool:
        return self.rank == 0


WRAPPERS = (torch.nn.parallel.DistributedDataParallel, torch._dynamo.eval_frame.OptimizedModule)


def _embed(model, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # Through forward where there is one: DDP and torch.compile act there, and a model may add
    # loss inputs of its own (AlignCLIP's frozen text semantics). A bare user model need not define it.
    if isinstance(model, WRAPPERS) or type(model).forward is not torch.nn.Module.forward:
        return model(batch)
    return {m: model.encode(m, x) for m, x in batch.items()}


def _unwrap(model):
    while isinstance(model, WRAPPERS):
        model = model.module if hasattr(model, "module") else model._orig_mod
    return model


def batch_loss(model, batch: dict[str, torch.Tensor], generator: torch.Generator, autocast) -> torch.Tensor:
    """The loss of this rank's part of a global batch, against every rank's embeddings."""
    with autocast:
        local = _embed(model, batch)
    gathered, rows = {}, None
    for m, e in local.items():
        gathered[m], rows = gather_with_grad(e.float())  # the loss runs in float32 whatever the encoders did
    return _unwrap(model).loss(gathered, rows=rows, generator=generator)


@torch.no_grad()
def mean_loss(model, data: Source | dict, batch_size: int, seed: int, place: Placement, autocast) -> float:
    """The mean loss over every row of `data`, in the global batches one process takes, the last one partial.

    Ranks take whole batches in turn, each loading only the shards its batches hold, so each row counts
    once for any split size and world size, and each batch draws its negatives from a generator of its own.
    """
    data = Source.of(data)
    model.eval()
    inner = _unwrap(model)
    validate = getattr(inner, "validation_loss", inner.loss)  # a model may select on part of its loss
    if data.rows == 0:
        raise SystemExit("the validation split has no sample: nothing to select the best epoch on")
    total = torch.zeros((), dtype=torch.float64, device=place.device)
    for j, rows in ordered_batches(data, batch_size, keep=lambda j: j % place.world == place.rank):
        batch = {m: x.to(place.device, non_blocking=True) for m, x in rows.items()}
        generator = torch.Generator().manual_seed(seed + VAL_SEED_OFFSET + j)
        with autocast:
            embeddings = _embed(inner, batch)
        loss = validate({m: e.float() for m, e in embeddings.items()}, generator=generator)
        total += loss.double() * len(next(iter(batch.values())))
    if place.world > 1:
        dist.all_reduce(total)
    return total.item() / data.rows


def _autocast(place: Placement, enabled: bool):
    # bf16 needs no loss scaling, so AMP stays a one-line switch.
    return torch.autocast(place.device.type, dtype=torch.bfloat16) if enabled else nullcontext()


def param_groups(model, weight_decay: float, lr: float) -> list[dict]:
    """AdamW's groups: the parameters a model names in `no_weight_decay()` (timm's convention) train without
    weight decay; a model without that method decays every parameter. All train at `lr` times the model's
    `lr_scale` (1 where it declares none)."""
    exempt = model.no_weight_decay() if hasattr(model, "no_weight_decay") else set()
    lr *= getattr(model, "lr_scale", 1.0)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]  # a frozen stage's are left out
    groups = [{"params": [p for n, p in named if n not in exempt], "weight_decay": weight_decay, "lr": lr},
              {"params": [p for n, p in named if n in exempt], "weight_decay": 0.0, "lr": lr}]
    return [group for group in groups if group["params"]]


def step_scalars(model, loss: float, lr: float) -> dict[str, float]:
    """The loss, its named terms (a model may leave them in ``loss_terms``), the learning rate and every
    temperature module's logit scale, by its place in the model."""
    scalars = {"loss": loss, "lr": lr}
    scalars.update({f"loss/{k}": float(v) for k, v in (getattr(model, "loss_terms", None) or {}).items()})
    for name, module in model.named_modules():
        if isinstance(module, TEMPERATURE_MODULES):
            scalars[f"logit_scale/{name}"] = float(module().detach())
    return scalars


def fit(model, train: Source | dict, val: Source | dict, config: TrainConfig, run_dir: Path, resume: bool = False,
        progress: bool = True, place: Placement | None = None, logging: Logging = Logging(),
        train_view: PieceView | None = None, workers: int = 0) -> dict:
    """Train `model`, checkpointing into `run_dir`; leave it holding the best weights.

    `train` and `val` are streamed splits (or in-memory columns, cut into pieces: benchmarks.streaming.Source.of).
    With `train_view` (the task's `Task.train_view`), each training piece is updated with
    ``train_view(arrays, epoch, config.seed, piece)`` as it loads; `workers` DataLoader processes per rank load them.

    A model with `stages()` (baselines/stages.py) trains in each in turn, `config.epochs` apiece, from the
    best weights of the one before: the first checkpoints into `run_dir`, each later one into
    `run_dir/stage-<name>`, whose best weights become the run's.

    Returns a summary for the run record: best epoch, its validation loss, seconds spent and the streams the
    batches were dealt to (the first stage's epoch and loss; every stage's under "stages").
    """
    place = place or Placement.detect()
    train, val = Source.of(train), Source.of(val)
    stages = model.stages() if hasattr(model, "stages") else ()
    if not stages:
        return _fit_stage(model, train, val, config, run_dir, resume, progress, place, logging, train_view, workers)
    summaries = {}
    for k, stage in enumerate(stages):
        model.set_stage(stage)
        folder = run_dir / f"stage-{stage}" if k else run_dir
        summaries[stage] = _fit_stage(model, train, val, config, folder, resume, progress, place, logging, train_view,
                                      workers)
    model.set_stage(None)
    if place.main:
        write_atomic(run_dir / BEST, (folder / BEST).read_bytes())
    if place.world > 1:
        dist.barrier()
    first = summaries[stages[0]]
    return {**first, "train_seconds": sum(s["train_seconds"] for s in summaries.values()), "stages": summaries}


def _fit_stage(model, train: Source, val: Source, config: TrainConfig, run_dir: Path, resume: bool, progress: bool,
               place: Placement, logging: Logging, train_view: PieceView | None, workers: int) -> dict:
    if config.threads:
        torch.set_num_threads(config.threads)
    order = Order(config.batch_size, config.streams or place.world, config.shuffle_buffer, config.seed)
    steps = [order.steps(train, epoch) for epoch in range(config.epochs)]
    if not all(steps):
        raise SystemExit(f"the {train.rows} training rows fill no batch of {config.batch_size} over "
                         f"{order.streams} streams: lower --batch-size or --streams")
    model.to(place.device)
    trained = model
    if place.world > 1:
        trained = torch.nn.parallel.DistributedDataParallel(model, device_ids=[place.device] if place.device.type == "cuda" else None)
    if config.compile:
        trained = torch.compile(trained)
    optimizer = torch.optim.AdamW(param_groups(model, config.weight_decay, config.lr))
    generator = torch.Generator().manual_seed(config.seed)  # the models' own draws (Symile's negatives), alike on every rank
    autocast = _autocast(place, config.amp)
    scheduler = lr_scheduler(optimizer, config.lr_schedule, config.warmup, sum(steps))
    state = {"epoch": -1, "best_epoch": -1, "best_val_loss": float("inf"), "seconds": 0.0, "log": [],
             "step": 0, "steps": [], "streams": order.streams, "within": _fresh_epoch()}
    if resume and (run_dir / STATE).is_file():
        state = _restore(run_dir, model, optimizer, scheduler, generator)
        if "within" not in state:
            raise SystemExit(f"{run_dir} holds a checkpoint of an older polymodal, which trained on whole splits; "
                             "start the run again with --overwrite")
        if state["streams"] != order.streams:
            raise SystemExit(f"{run_dir} was trained over {state.get('streams')} streams and this command deals "
                             f"{order.streams}; resume it with --streams {state.get('streams')}")
    run_dir.mkdir(parents=True, exist_ok=True)
    reporters = [REPORTERS[name](run_dir, dataclasses.asdict(config), state["step"])
                 for name in logging.report_to] if place.main else []
    stage = getattr(model, "stage", None)
    bar = progress_bar(range(state["epoch"] + 1, config.epochs), desc=f"train ({stage})" if stage else "train", unit="epoch",
                       shown=progress and place.main, initial=state["epoch"] + 1, total=config.epochs)
    for epoch in bar:
        within = state["within"]  # how far a checkpoint within this epoch had got
        began, seen, done = time.perf_counter(), within["rows"], within["batches"]
        window = (began, seen)  # when the current logging window began, and the rows seen before it
        total = torch.tensor(within["loss"], dtype=torch.float64, device=place.device)  # no sync per step
        trained.train()
        for batch in epoch_batches(train, order, epoch, place.rank, place.world, workers, train_view, done):
            batch = {m: x.to(place.device, non_blocking=True) for m, x in batch.items()}
            lr = optimizer.param_groups[0]["lr"]
            loss = batch_loss(trained, batch, generator, autocast)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            rows = len(next(iter(batch.values())))
            seen += rows
            done += 1
            total += loss.detach().double() * rows
            state["step"] += 1
            if state["step"] % logging.every == 0:  # the only steps that wait for the device
                now = time.perf_counter()
                per_device = (seen - window[1]) / (now - window[0])
                record = {"step": state["step"], "epoch": epoch,
                          **step_scalars(model, _mean_over_ranks(loss.detach(), place), lr),
                          "samples_per_s": per_device * place.world, "samples_per_s_per_device": per_device,
                          "time": time.time()}
                window = (now, seen)
                state["steps"].append(record)
                for reporter in reporters:
                    reporter.log({f"train/{k}": v for k, v in record.items() if k not in ("step", "time")}, state["step"])
            if logging.checkpoint_every and state["step"] % logging.checkpoint_every == 0 and done < steps[epoch]:
                state["within"] = {"batches": done, "rows": seen, "loss": total.item(),
                                   "seconds": within["seconds"] + time.perf_counter() - began}
                if place.main:
                    _checkpoint(run_dir, model, optimizer, scheduler, generator, state, improved=False)
        seconds = within["seconds"] + time.perf_counter() - began
        total = total.item()
        val_loss = mean_loss(trained, val, config.batch_size, config.seed, place, autocast)
        state["seconds"] += seconds
        improved = val_loss < state["best_val_loss"]
        if improved:
            state.update(best_epoch=epoch, best_val_loss=val_loss)
        state.update(epoch=epoch, within=_fresh_epoch())
        record = {"epoch": epoch, "train_loss": total / seen, "val_loss": val_loss,
                  "samples_per_s": seen * place.world / seconds, "samples_per_s_per_device": seen / seconds}
        bar.set_postfix(loss=f"{record['train_loss']:.3f}", val=f"{val_loss:.3f}",
                        samples_s=f"{record['samples_per_s']:,.0f}")
        state["log"].append(record)
        for reporter in reporters:
            reporter.log({"val/loss": val_loss, "train/epoch_loss": record["train_loss"]}, state["step"])
        if place.main:
            _checkpoint(run_dir, model, optimizer, scheduler, generator, state, improved)
    bar.close()
    for reporter in reporters:
        reporter.close()
    if place.world > 1:
        dist.barrier()  # rank 0's best weights are on disk before anyone reads them
    load_model(model, str(run_dir / BEST), device=str(place.device))
    return {"best_epoch": state["best_epoch"], "best_val_loss": state["best_val_loss"], "train_seconds": state["seconds"],
            "streams": order.streams}


def _fresh_epoch() -> dict:
    """How far an epoch has got: batches and rows trained, their summed loss, seconds spent."""
    return {"batches": 0, "rows": 0, "loss": 0.0, "seconds": 0.0}


def _mean_over_ranks(loss: torch.Tensor, place: Placement) -> float:
    if place.world > 1:
        loss = loss.clone()
        dist.all_reduce(loss)
        loss /= place.world
    return loss.item()


def _checkpoint(run_dir: Path, model, optimizer, scheduler, generator: torch.Generator, state: dict,
                improved: bool) -> None:
    """Weights first, then the state that names them, so a kill at any point resumes consistently.

    A kill after best.safetensors but before the state re-runs the epoch from the checkpoint before,
    which deterministically writes the same best weights again.
    """
    last = f"step-{state['step']:08d}.safetensors"
    save_model(model, str(run_dir / last))
    if improved:
        save_model(model, str(run_dir / BEST))
    blob = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "generator": generator.get_state(),
            "torch_rng": torch.get_rng_state(), "progress": {**state, "last": last}}
    state_bytes = io.BytesIO()
    torch.save(blob, state_bytes)
    write_atomic(run_dir / STATE, state_bytes.getvalue())
    for old in run_dir.glob("step-*.safetensors"):
        if old.name != last:
            old.unlink()
    # The logs are rewritten from the state, so a resumed run never repeats or loses a line.
    for name, records in ((LOG, state["log"]), (STEPS, state["steps"])):
        write_atomic(run_dir / name, "".join(json.dumps(record) + "\n" for record in records).encode())


def _restore(run_dir: Path, model, optimizer, scheduler, generator: torch.Generator) -> dict:
    try:
        blob = torch.load(run_dir / STATE, weights_only=True)  # never unpickle arbitrary objects
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:  # torch's messages run to many lines
        raise SystemExit(f"{run_dir / STATE} is no checkpoint to resume from ({type(err).__name__}); start the "
                         "run again with --overwrite") from None
    load_model(model, str(run_dir / blob["progress"]["last"]))
    optimizer.load_state_dict(blob["optimizer"])
    scheduler.load_state_dict(blob["scheduler"])
    generator.set_state(blob["generator"])
    torch.set_rng_state(blob["torch_rng"])
    return blob["progress"]
