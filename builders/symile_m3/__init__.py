"""Symile-M3: multilingual image-text-audio triples; the builder, its sources, class names, speech and card."""

from .builder import SymileM3Builder

__all__ = ["SymileM3Builder"]
