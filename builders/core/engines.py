"""What runs the shards: a local process pool, or tasks of an existing cluster engine.

Every engine calls `run_shard(builder_cls, config, spec, out_dir)` for each
pending spec, so the bytes are the same whichever runs them; a cluster's
workers must see `out_dir` (and any source folders) at the same paths.
"""

from __future__ import annotations

import contextlib
import os
from typing import Callable, Iterable

from polymodal.builders.core.base import ShardSpec
from polymodal.builders.core.shard import run_shard
from polymodal.registry import Registry

Engine = Callable[[type, dict, list[ShardSpec], str, int], Iterable[dict]]


def local_engine(builder_cls: type, config: dict, specs: list[ShardSpec], out_dir: str, workers: int) -> Iterable[dict]:
    """The default engine: in-process for one worker, else a process pool over shard ids."""
    if workers <= 1:
        for spec in specs:
            yield run_shard(builder_cls, config, spec, out_dir)
        return
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=workers, initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
        futures = [pool.submit(run_shard, builder_cls, config, spec, out_dir) for spec in specs]
        for future in as_completed(futures):
            yield future.result()


def die_with_parent(parent: int) -> None:
    """Make this worker process get SIGKILL when its parent dies (Linux), even by `kill -9`: else a killed
    build leaves its workers running for good."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return  # not Linux: nothing to ask the kernel for
    if os.getppid() != parent:  # the parent died before the request: no signal will come
        os._exit(1)


class ShardFailed(Exception):
    """A shard's SystemExit (a clear message about its input), carried back from a Dask worker."""


def _dask_task(builder_cls: type, config: dict, spec: ShardSpec, out_dir: str) -> dict:
    try:
        return run_shard(builder_cls, config, spec, out_dir)
    except SystemExit as err:  # a worker that raises SystemExit dies, and Dask only reports KilledWorker
        raise ShardFailed(str(err)) from None


def dask_engine(builder_cls: type, config: dict, specs: list[ShardSpec], out_dir: str, workers: int) -> Iterable[dict]:
    """Shards as Dask tasks: on the scheduler that Dask's own config names (DASK_SCHEDULER_ADDRESS), else on a
    local cluster of `workers` single-threaded processes that lives as long as the build (its workers end
    when this process dies: their nannies live in it)."""
    import dask  # imported on use: a plain install has no dask
    from distributed import Client, LocalCluster, as_completed

    address = dask.config.get("scheduler-address", None)
    with contextlib.ExitStack() as stack:
        if address:
            client = stack.enter_context(Client(address))
        else:
            cluster = stack.enter_context(
                LocalCluster(n_workers=max(1, workers), threads_per_worker=1, dashboard_address=None)
            )
            client = stack.enter_context(Client(cluster))
        # pure=False: a shard's task must run, never be taken from a result cached under the same arguments.
        futures = [client.submit(_dask_task, builder_cls, config, spec, out_dir, pure=False) for spec in specs]
        try:
            for future in as_completed(futures):
                yield future.result()
        except ShardFailed as err:
            raise SystemExit(str(err)) from None


ENGINES: Registry[Engine] = Registry("engine", {"local": local_engine, "dask": dask_engine})
