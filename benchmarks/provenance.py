"""What produced a result: code version and hardware."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

from polymodal import __version__


def code_version() -> dict:
    """The package version, and the git commit when running from a checkout (None otherwise)."""
    repo = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"package": __version__, "git_commit": None}
    return {"package": __version__, "git_commit": commit + ("-dirty" if dirty else "")}


def hardware(device: str) -> dict:
    import torch

    if device.startswith("cuda"):
        name, count = torch.cuda.get_device_name(torch.device(device)), torch.cuda.device_count()
    else:
        name, count = platform.processor() or platform.machine(), 1
    return {
        "device": device.split(":")[0],
        "device_name": name,
        "num_devices": count,
        "platform": platform.platform(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
