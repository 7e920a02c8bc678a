"""How close the XOR builder comes to the cost of writing its bytes.

Anchor (the floor): a bare `tarfile` loop writing the very same members with
the same metadata; measured: the builder's whole shard path. See
shard_floor.py for how both are run and checked to write identical bytes.

    python benchmarks/perf/build_xor.py [--samples 20000]

Goal: ratio <= 1.5.
"""

from __future__ import annotations

import argparse

from shard_floor import time_against_floor

from polymodal.builders.core.base import ShardSpec
from polymodal.builders.xor import XorBuilder, XorConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=20_000, help="samples in the shard (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats; the best counts (default %(default)s)")
    args = parser.parse_args()

    config = XorConfig(train=args.samples, shard_size=args.samples)
    best = time_against_floor(XorBuilder(config), ShardSpec("train", 0, 0, args.samples), args.repeats)

    print(f"samples per shard      {args.samples}")
    print(f"builder                {args.samples / best['builder']:,.0f} samples/s")
    print(f"bare tarfile (floor)   {args.samples / best['floor']:,.0f} samples/s")
    print(f"ratio builder/floor    {best['builder'] / best['floor']:.2f}  (goal <= 1.5)")


if __name__ == "__main__":
    main()
