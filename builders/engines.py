"""Cluster engines: the same shard ids as the local pool, run as tasks of an existing engine.

Each task calls `run_shard(name, config, spec, out_dir)`, so the bytes are
the local run's; the workers must see `out_dir` (and any source folders) at the
same paths.
"""

from __future__ import annotations

import contextlib
from typing import Iterable

from builders.base import ShardSpec
from builders.runner import run_shard


class ShardFailed(Exception):
    """A shard's SystemExit (a clear message about its input), carried back from a Dask worker."""


def run_shard_task(name: str, config: dict, spec: ShardSpec, out_dir: str) -> dict:
    try:
        return run_shard(name, config, spec, out_dir)
    except SystemExit as err:  # a worker that raises SystemExit dies, and Dask only reports KilledWorker
        raise ShardFailed(str(err)) from None


def dask_engine(name: str, config: dict, specs: list[ShardSpec], out_dir: str, workers: int) -> Iterable[dict]:
    """Shards as Dask tasks: on the scheduler that Dask's own config names (DASK_SCHEDULER_ADDRESS), else on a
    local cluster of `workers` single-threaded processes that lives as long as the build."""
    import dask
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
        futures = [client.submit(run_shard_task, name, config, spec, out_dir, pure=False) for spec in specs]
        try:
            for future in as_completed(futures):
                yield future.result()
        except ShardFailed as err:
            raise SystemExit(str(err)) from None
