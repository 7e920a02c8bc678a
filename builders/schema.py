"""What a polymodal sample holds: member names, the audio's rate, a clip's length.

The one module of `builders` that the harness imports besides the builders
themselves, so that neither side retypes these. Members follow WebDataset's
`{key}.{field}` layout.
"""

import re

SAMPLE_RATE = 16_000  # every builder writes 16 kHz mono FLAC
CLIP_SECONDS = 10  # a VGG-sound+ window

# Members of the media datasets (Symile-M3, VGG-sound+).
IMAGE = "image.jpg"
AUDIO = "audio.flac"
TEXT = "text.txt"
LABEL = "cls"  # the class id, as decimal text
META = "json"  # everything else about the sample
MEDIA_FIELDS = (AUDIO, LABEL, IMAGE, META, TEXT)  # sorted, as a tar holds them

# Members of XOR: one int8 .npy row per modality.
XOR_MODALITIES = ("a", "b", "c")
XOR_FIELDS = (*(f"{m}.npy" for m in XOR_MODALITIES), META)

_MEMBER = re.compile(r"([0-9A-Za-z_-]+)\.([0-9A-Za-z_.-]+)")


def split_member(name: str) -> tuple[str | None, str | None]:
    """(key, field) of a member named `key.field` in a shard's own folder; (None, None) for anything else
    (a path such as `../x.jpg`, an empty key): readers refuse those."""
    match = _MEMBER.fullmatch(name)
    return (match[1], match[2]) if match else (None, None)
