"""Helpers shared by the tests: the repository root, the reference models, torchrun, killing a job, reading shards."""

import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

from polymodal.baselines.models import MODELS

ROOT = Path(__file__).resolve().parents[1]
#: The reference models every task must run (docs/compatibility.md): every registered one.
REFERENCE_MODELS = tuple(MODELS)
#: Two ranks on this machine, gloo on CPU; run with torchrun_env().
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


def torchrun_env() -> dict[str, str]:
    """The environment of a test's subprocess: this checkout importable, one thread a rank."""
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def run_job(cmd: list, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """`cmd` (no shell) run to its end from ROOT with torchrun_env(), its output captured, as subprocess.run with
    check=True; in a session of its own, which a timeout kills whole: torchrun killed alone leaves its ranks."""
    kwargs = {"cwd": ROOT, "env": torchrun_env(), **kwargs}
    with subprocess.Popen(list(map(str, cmd)), start_new_session=True, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, **kwargs) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, cmd, out, err)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def folder_bytes(folder: Path) -> dict[str, bytes]:
    """Every file below `folder`, by relative path: equal dicts mean byte-identical folders."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def killed_on_call(n: int, real: Callable) -> Callable:
    """`real`, except that its n-th call raises KeyboardInterrupt, as a job killed at that point would stop."""
    calls = {"n": 0}

    def dies(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    return dies


def sigkill_when(cmd: list[str], ready: Callable[[], bool], env: dict | None = None, timeout: float = 120) -> None:
    """Start `cmd` (no shell) and SIGKILL it as soon as `ready()` holds; fail if it ends first."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            assert proc.poll() is None, "the job finished before it could be killed; make it larger"
            assert time.monotonic() < deadline, "the job never reached the point to kill it at"
            time.sleep(0.01)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def split_samples(folder: Path, split: str) -> dict[str, dict[str, bytes]]:
    """Every sample of a built split, read with plain tarfile: {key: {field: bytes}}, keys sorted."""
    import tarfile

    samples: dict[str, dict[str, bytes]] = {}
    for shard in sorted((folder / split).glob("*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar:
                key, _, field = member.name.partition(".")
                samples.setdefault(key, {})[field] = tar.extractfile(member).read()
    return dict(sorted(samples.items()))


class LoopbackServer:
    """An HTTP server on 127.0.0.1 only, answering with `handler`, that shuts itself down after `lifetime`
    seconds should a test hang; a context manager."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], lifetime: float):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.deadline = threading.Timer(lifetime, self.httpd.shutdown)
        self.deadline.daemon = True

    @property
    def port(self) -> int:
        return self.httpd.server_port

    def __enter__(self):
        self.thread.start()
        self.deadline.start()
        return self

    def __exit__(self, *exc):
        self.deadline.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()
