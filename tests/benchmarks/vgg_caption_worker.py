"""Run by tests/benchmarks/test_vggsound_plus_captions.py, in one process or under torchrun: a VGG-sound+ training
run whose every batch's caption ids are kept; rank 0 writes, per optimizer step, the ids of every rank's part of
the global batch, in rank order, to OUT (safetensors), so that the test sees what each rank trained on.

    python tests/benchmarks/vgg_caption_worker.py DATA RUN_DIR OUT
"""

import dataclasses
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import save_file

from polymodal.benchmarks import training
from polymodal.benchmarks.runs import train_run
from polymodal.benchmarks.tasks import load_task

EPOCHS, BATCH, SEED, STREAMS = 2, 2, 3, 2  # two streams, whether one process or two ranks run them


def main(data: str, run_dir: str, out: str) -> None:
    if int(os.environ.get("WORLD_SIZE", 1)) > 1:
        dist.init_process_group("gloo")
    steps = []
    epoch_batches = training.epoch_batches

    def kept(*args):
        for batch in epoch_batches(*args):
            steps.append(batch["text"].clone())
            yield batch

    training.epoch_batches = kept
    config = dataclasses.replace(load_task("vggsound-plus").train_defaults, epochs=EPOCHS, batch_size=BATCH, seed=SEED,
                                 streams=STREAMS)
    train_run("vggsound-plus", "clip", Path(data), Path(run_dir), config, progress=False)
    text = torch.stack(steps)  # (steps, this rank's rows, 64)
    if dist.is_initialized():
        parts = [torch.empty_like(text) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, text)
        text = torch.cat(parts, 1)
        dist.destroy_process_group()
    if int(os.environ.get("RANK", 0)) == 0:
        save_file({"text": text}, out)


if __name__ == "__main__":
    main(*sys.argv[1:])
