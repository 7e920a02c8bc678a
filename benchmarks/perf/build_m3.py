"""How close the Symile-M3 builder comes to the cost of writing its bytes, and what its speech pool costs.

Pool: espeak-ng synthesis of every utterance of a pool into an empty cache,
once for the benchmarked build (digits: ten number words per language) and
once for the Babel-ImageNet pool of --pool-languages (every class name
in every language), which is what an ImageNet build pays before its shards.

Throughput, once the pool exists: the builder's whole shard path - drawing,
fetching image and audio bytes, text and metadata, the deterministic
TarWriter, hashing, fsync, rename and the stats file - against a bare
`tarfile` loop writing the very same members with the same metadata (see
shard_floor.py); the first builder run, with cold per-process caches, is
reported too.

    python benchmarks/perf/build_m3.py [--samples 5000] [--languages M3-5] [--pool-languages M3-10]

Goal: ratio <= 2.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from shard_floor import time_against_floor

from polymodal.builders.core.base import ShardSpec
from polymodal.builders.symile_m3.builder import (
    LANGUAGE_SETS,
    M3Config,
    SymileM3Builder,
    language_list,
    language_set_name,
)
from polymodal.builders.symile_m3.names import load_table
from polymodal.builders.symile_m3.sources import EspeakAudio
from polymodal.builders.symile_m3.speech import CACHE_ENV


def time_pool(audio: EspeakAudio) -> tuple[int, float]:
    began = time.perf_counter()
    made = audio.prepare()
    return made, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=5_000, help="samples in the shard (default %(default)s)")
    parser.add_argument("--languages", type=language_list, default=LANGUAGE_SETS["M3-5"],
                        help="language set or list of the benchmarked build (default M3-5)")
    parser.add_argument("--pool-languages", type=language_list, default=LANGUAGE_SETS["M3-10"],
                        help="language set or list whose Babel-ImageNet pool is timed (default M3-10)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats; the best counts (default %(default)s)")
    args = parser.parse_args()
    import webdataset  # noqa: F401  (loaded up front: its import, torch included, is no per-shard cost)

    with tempfile.TemporaryDirectory() as cache:
        os.environ[CACHE_ENV] = cache  # an empty cache: the pools are timed from scratch
        config = M3Config(languages=args.languages, train=args.samples, val=0, test=0, shard_size=args.samples)
        builder = SymileM3Builder(config)
        builder.check_environment()
        pool, pool_s = time_pool(builder.catalog().audio)
        babel = EspeakAudio("", args.pool_languages, load_table("babel", args.pool_languages))
        babel_pool, babel_s = time_pool(babel)

        best = time_against_floor(builder, ShardSpec("train", 0, 0, args.samples), args.repeats)

    print(f"build                  {language_set_name(args.languages)} ({','.join(args.languages)}), digits, espeak")
    print(f"pool of this build     {pool} utterances in {pool_s:.2f} s ({pool / pool_s:,.1f}/s)")
    print(f"Babel pool, {language_set_name(args.pool_languages):<10} {babel_pool} utterances in {babel_s:.1f} s "
          f"({babel_pool / babel_s:,.1f}/s on {os.cpu_count()} cores)")
    print(f"samples per shard      {args.samples} ({best['megabytes'] / args.samples * 1e3:.1f} kB each)")
    print(f"builder, cold caches   {args.samples / best['cold']:,.0f} samples/s")
    print(f"builder                {args.samples / best['builder']:,.0f} samples/s")
    print(f"bare tarfile (floor)   {args.samples / best['floor']:,.0f} samples/s")
    print(f"ratio builder/floor    {best['builder'] / best['floor']:.2f}  (goal <= 2)")


if __name__ == "__main__":
    main()
