import sys

import pytest

from tests.helpers import ROOT  # noqa: F401  (the repository root)
from tests.s3_server import s3_bucket, s3_endpoint  # noqa: F401  (a moto S3 server on loopback, for every layer)

_SCREENSHOTS: list = []


@pytest.fixture
def saved_screenshot():
    """Call it with the path of a screenshot a test saved: the run's summary names it, for a person to look at."""
    return _SCREENSHOTS.append


def pytest_terminal_summary(terminalreporter):
    for path in _SCREENSHOTS:
        terminalreporter.write_line(f"screenshot: {path}")


@pytest.fixture
def run_cli():
    """Run a `python -m` entry point in a subprocess, as a user would; never through a shell."""
    import subprocess

    def run(*args, check=True, **kwargs):
        proc = subprocess.run([sys.executable, "-m", *map(str, args)], capture_output=True, text=True, cwd=ROOT, **kwargs)
        if check and proc.returncode != 0:
            raise AssertionError(f"{args} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        return proc

    return run


@pytest.fixture
def one_thread():
    """Torch on one thread: tiny models gain nothing from more, and lose much when other jobs share the cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
