"""Dataset builders: deterministic WebDataset shards, each folder with a manifest and a data card.

`BUILDERS` maps a dataset name to its `Builder` class; see `polymodal.builders.core.base`
for the contract and `polymodal.builders.core.runner.build` to run one.
"""

from polymodal.builders.core.base import Builder
from polymodal.builders.symile_m3.builder import SymileM3Builder
from polymodal.builders.vggsound_plus.builder import VggSoundPlusBuilder
from polymodal.builders.xnor import XnorBuilder
from polymodal.builders.xor import XorBuilder
from polymodal.registry import Registry

BUILDERS: Registry[type[Builder]] = Registry("dataset", {
    b.name: b for b in (XorBuilder, XnorBuilder, SymileM3Builder, VggSoundPlusBuilder)})

__all__ = ["BUILDERS", "Builder"]
