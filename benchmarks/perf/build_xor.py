"""How close the XOR builder comes to the cost of writing its bytes.

Anchor (the floor): a bare `tarfile` loop writing the very same members,
already encoded, with the same metadata - the script checks that both tars
are byte-identical. Measured: the builder's whole shard path -
generating, encoding, the deterministic TarWriter, hashing, fsync, rename and
the stats file. Both run in this process, interleaved, best of --repeats.

    python benchmarks/perf/build_xor.py [--samples 20000]

Goal: ratio <= 1.5.
"""

from __future__ import annotations

import argparse
import io
import tarfile
import tempfile
import time
from pathlib import Path

from builders.base import ShardSpec
from builders.runner import run_shard
from builders.tarshards import MTIME, OWNER
from builders.xor import XorBuilder, XorConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=20_000, help="samples in the shard (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats; the best counts (default %(default)s)")
    args = parser.parse_args()

    config = XorConfig(train=args.samples, shard_size=args.samples)
    spec = ShardSpec("train", 0, 0, args.samples)
    rows = list(XorBuilder(config).make_shard(spec))

    def builder_path(folder: Path) -> None:
        run_shard("xor", XorBuilder(config).config_dict(), spec, str(folder))

    def floor(folder: Path) -> None:
        with tarfile.open(folder / "floor.tar", "w|") as tar:
            for row in rows:
                for field in sorted(row.sample):
                    info = tarfile.TarInfo(f"{row.key}.{field}")
                    info.size, info.mtime, info.mode = len(row.sample[field]), MTIME, 0o444
                    info.uname = info.gname = OWNER
                    tar.addfile(info, io.BytesIO(row.sample[field]))

    with tempfile.TemporaryDirectory() as tmp:
        builder_path(Path(tmp))
        floor(Path(tmp))
        same = (Path(tmp) / "floor.tar").read_bytes() == (Path(tmp) / spec.stem("xor")).with_suffix(".tar").read_bytes()
    if not same:
        raise SystemExit("the floor does not write the same bytes as the builder; the comparison would be unfair")

    best = {"builder": float("inf"), "floor": float("inf")}
    for _ in range(args.repeats):
        for name, fn in (("builder", builder_path), ("floor", floor)):
            with tempfile.TemporaryDirectory() as tmp:
                began = time.perf_counter()
                fn(Path(tmp))
                best[name] = min(best[name], time.perf_counter() - began)

    print(f"samples per shard      {args.samples}")
    print(f"builder                {args.samples / best['builder']:,.0f} samples/s")
    print(f"bare tarfile (floor)   {args.samples / best['floor']:,.0f} samples/s")
    print(f"ratio builder/floor    {best['builder'] / best['floor']:.2f}  (goal <= 1.5)")


if __name__ == "__main__":
    main()
