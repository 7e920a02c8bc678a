"""VGG-sound+: frame, audio and caption per VGGSound clip; the builder, index, fetching, clips, captions and card.

What the harness may use is exported here; the modules inside are the builder's own.
"""

from .builder import VggConfig, VggSoundPlusBuilder
from .index import class_index

__all__ = ["VggConfig", "VggSoundPlusBuilder", "class_index"]
