"""Progress as every command shows it: a tqdm bar on a terminal; elsewhere (a log file, CI, a pipe) one line
per finished unit, since `\\r` redraws there pile up into one unreadable line. `polymodal --quiet` sets
:data:`QUIET`, which silences them all.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable

from tqdm import tqdm

QUIET = False  # set by `polymodal --quiet`


def progress_bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
                 initial: int = 0, shown: bool = True):
    """A bar over `iterable`, or one that `update(n)` advances; `shown=False` (a command's --no-progress, a
    rank other than 0) hides it. It answers the calls of tqdm that polymodal makes, and is a context manager."""
    if QUIET or not shown:
        return tqdm(iterable, total=total, disable=True)
    if sys.stderr.isatty():
        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial)
    return Lines(iterable, total=total, desc=desc, unit=unit, initial=initial)


class Lines:
    """One line on stderr per finished unit: `desc: n/total units (seconds), postfix`."""

    def __init__(self, iterable: Iterable | None, *, total: int | None, desc: str, unit: str, initial: int):
        self.iterable, self.desc, self.unit = iterable, desc, unit
        self.total = len(iterable) if total is None and hasattr(iterable, "__len__") else total  # as tqdm counts
        self.n, self.postfix, self.began = initial, "", time.monotonic()

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update()  # after the unit's work, so its line carries the postfix set meanwhile

    def update(self, n: int = 1) -> None:
        self.n += n
        done = f"{self.n:,}" + (f"/{self.total:,}" if self.total else "")
        print(f"{self.desc}: {done} {self.unit}s ({time.monotonic() - self.began:.1f}s){self.postfix}",
              file=sys.stderr, flush=True)

    def set_postfix(self, **values) -> None:
        self.postfix = "".join(f", {k} {v}" for k, v in values.items())

    def close(self) -> None:
        """Nothing to clear: every line is already whole."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
