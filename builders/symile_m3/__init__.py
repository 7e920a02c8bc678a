"""Symile-M3: multilingual image-text-audio triples; the builder, its sources, class names, speech and card.

What the harness may use is exported here; the modules inside are the builder's own.
"""

from .builder import LANGUAGE_SETS, M3Config, SymileM3Builder

__all__ = ["LANGUAGE_SETS", "M3Config", "SymileM3Builder"]
