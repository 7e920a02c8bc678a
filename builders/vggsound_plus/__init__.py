"""VGG-sound+: frame, audio and caption per VGGSound clip; the builder, index, fetching, clips, captions and card."""

from .builder import VggSoundPlusBuilder

__all__ = ["VggSoundPlusBuilder"]
