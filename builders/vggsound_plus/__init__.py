"""VGG-sound+: frame, audio and caption per VGGSound clip; the builder, index, fetching, clips, captions and card.

What the harness may use is exported here; the modules inside are the builder's own.
"""

from .builder import VggConfig, VggSoundPlusBuilder
from .captioners import TEMPLATES, fills_templates
from .index import class_index, synonyms

__all__ = ["VggConfig", "VggSoundPlusBuilder", "TEMPLATES", "class_index", "fills_templates", "synonyms"]
