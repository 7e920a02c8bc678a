"""The Ray engine on a cluster that it did not start: `ray start`, named by RAY_ADDRESS, as a user's would be.
(The Ray that a build starts itself: test_vggsound_plus.py for its bytes, test_build_faults.py for kill -9.)"""

import os
import re
import signal
import subprocess
import sys

import pytest

from polymodal.builders.core.runner import build
from polymodal.builders.xor import XorBuilder, XorConfig
from tests.helpers import ROOT, folder_bytes

# Token authentication off on both sides: `ray start` turns it on only where ~/.ray holds a token already.
AUTH = {"RAY_AUTH_MODE": "disabled"}


@pytest.fixture(scope="module")
def ray_address():
    """A Ray head of two CPUs in its own process (`ray start --block`), its address, then stopped by SIGTERM
    (never `ray stop`, which stops every Ray on the machine)."""
    cmd = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", "--port", "0", "--num-cpus", "2",
           "--include-dashboard=false", "--disable-usage-stats"]
    head = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, **AUTH))
    try:
        for line in head.stdout:
            found = re.search(r"ray start --address='([^']+)'", line)
            if found:
                break
        else:
            pytest.fail("ray start ended without an address")
        yield found.group(1), head
    finally:
        head.send_signal(signal.SIGTERM)
        head.wait(60)


def test_a_build_on_a_ray_cluster_gives_the_local_bytes_and_leaves_the_cluster_running(tmp_path, ray_address):
    address, head = ray_address
    config = dict(train=600, val=200, test=300, test_draws=2, shard_size=250)
    build(XorBuilder(XorConfig(**config)), tmp_path / "local", progress=False)
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in config.items()]
    cmd = [sys.executable, "-m", "polymodal", "build", "xor", "--out", str(tmp_path / "ray"), "--engine", "ray",
           "--no-progress", *flags]
    subprocess.run(cmd, cwd=ROOT, check=True, env=dict(os.environ, RAY_ADDRESS=address, **AUTH))
    assert folder_bytes(tmp_path / "ray") == folder_bytes(tmp_path / "local")
    assert head.poll() is None, "the build stopped a cluster that it did not start"
