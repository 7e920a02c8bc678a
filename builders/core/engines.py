"""What runs the shards: a local process pool, or tasks of a cluster engine (Dask, Ray).

Every engine calls `run_shard(builder_cls, config, spec, out_dir)` for each
pending spec, so the bytes are the same whichever runs them; a cluster's
workers must see `out_dir` (and any source folders) at the same paths.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from pathlib import Path
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
    """A shard's SystemExit (a clear message about its input), carried back from a cluster's worker."""


def _shard_task(builder_cls: type, config: dict, spec: ShardSpec, out_dir: str) -> dict:
    try:
        return run_shard(builder_cls, config, spec, out_dir)
    except SystemExit as err:  # a worker that raises SystemExit dies: Dask reports KilledWorker, Ray WorkerCrashedError
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
        futures = [client.submit(_shard_task, builder_cls, config, spec, out_dir, pure=False) for spec in specs]
        try:
            for future in as_completed(futures):
                yield future.result()
        except ShardFailed as err:
            raise SystemExit(str(err)) from None


def ray_engine(builder_cls: type, config: dict, specs: list[ShardSpec], out_dir: str, workers: int) -> Iterable[dict]:
    """Shards as Ray tasks: on the cluster that Ray's own config names (RAY_ADDRESS) or that this process has
    already joined, else on a local Ray of `workers` CPUs that lives as long as the build, and dies with it."""
    import ray  # imported on use: a plain install has no ray

    with contextlib.ExitStack() as stack:
        if not ray.is_initialized():  # a Ray that the caller started stays theirs: neither joined again nor shut down
            if os.environ.get("RAY_ADDRESS"):
                ray.init()
            else:
                before = _descendants(os.getpid())
                # address="local": a Ray of our own, never one that `ray start` left running on this machine;
                # WARNING keeps Ray's start-up lines off the build's console.
                ray.init(address="local", num_cpus=max(1, workers), include_dashboard=False,
                         logging_level=logging.WARNING)
                stack.enter_context(_killed_when_this_process_ends(_descendants(os.getpid()) - before))
            stack.callback(ray.shutdown)  # runs first: a clean stop, before the watcher kills what is left
        # A shard whose worker crashed runs again (its files are written atomically); a ShardFailed never does.
        task = ray.remote(_shard_task).options(max_retries=3, retry_exceptions=False)
        pending = [task.remote(builder_cls, config, spec, out_dir) for spec in specs]
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                yield ray.get(done[0])
        except ray.exceptions.RayTaskError as err:
            if isinstance(err.cause, ShardFailed):
                raise SystemExit(str(err.cause)) from None
            raise


def _descendants(root: int) -> set[int]:
    """The processes below `root`, from Linux's /proc (none elsewhere)."""
    found, todo = set(), [root]
    while todo:
        with contextlib.suppress(OSError):  # gone meanwhile, or not Linux
            for task in Path(f"/proc/{todo.pop()}/task").iterdir():
                new = {int(pid) for pid in (task / "children").read_text().split()} - found
                found |= new
                todo.extend(new)
    return found


# The watcher: blocks until the build's end of its stdin closes (the build ended, even by kill -9), then kills.
_WATCHER = """
import signal, sys
sys.stdin.read()
for fd in map(int, sys.argv[1:]):
    try:
        signal.pidfd_send_signal(fd, signal.SIGKILL)
    except ProcessLookupError:
        pass
"""


@contextlib.contextmanager
def _killed_when_this_process_ends(pids: set[int]):
    """Ray's gcs, raylet and workers die with the process that started them (prctl), but its agents first wait a
    minute on the dead gcs. A watcher in its own session kills `pids` the moment this process ends; it holds them
    as pidfds, so that a pid reused meanwhile is never hit."""
    fds = []
    for pid in pids:
        with contextlib.suppress(OSError):  # already gone, or a kernel without pidfds (before Linux 5.3)
            fds.append(os.pidfd_open(pid))
    try:
        watcher = subprocess.Popen([sys.executable, "-c", _WATCHER, *map(str, fds)], stdin=subprocess.PIPE,
                                   pass_fds=fds, start_new_session=True)
    finally:
        for fd in fds:
            os.close(fd)
    try:
        yield
    finally:
        watcher.stdin.close()
        watcher.wait()


ENGINES: Registry[Engine] = Registry("engine", {"local": local_engine, "dask": dask_engine, "ray": ray_engine})
