"""Dataset builders: deterministic WebDataset shards, each folder with a manifest and a data card.

`BUILDERS` maps a dataset name to its `Builder` class; see `builders.base`
for the contract and `builders.runner.build` to run one.
"""

from builders.base import Builder
from builders.symile_m3 import SymileM3Builder
from builders.vggsound_plus import VggSoundPlusBuilder
from builders.xor import XorBuilder

BUILDERS: dict[str, type[Builder]] = {b.name: b for b in (XorBuilder, SymileM3Builder, VggSoundPlusBuilder)}

__all__ = ["BUILDERS", "Builder"]
