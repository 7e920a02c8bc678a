"""What a polymodal sample holds: member names, the audio's rate, a clip's length.

The one module of `builders` that the harness imports besides the builders
themselves, so that neither side retypes these. Members follow WebDataset's
`{key}.{field}` layout, one member per modality named by its extension alone, as stock readers
(open_clip's `get_wds_dataset`, CLIP_benchmark, img2dataset) expect.
"""

import re

SAMPLE_RATE = 16_000  # every builder writes 16 kHz mono FLAC
CLIP_SECONDS = 10  # a VGG-sound+ window

# Members of the media datasets (Symile-M3, VGG-sound+).
IMAGE = "jpg"
AUDIO = "flac"
TEXT = "txt"
LABEL = "cls"  # the class id, as decimal text
META = "json"  # everything else about the sample
MEDIA_FIELDS = (LABEL, AUDIO, IMAGE, META, TEXT)  # sorted, as a tar holds them

# Members of XOR: one int8 .npy row per modality.
XOR_MODALITIES = ("a", "b", "c")
XOR_FIELDS = (*(f"{m}.npy" for m in XOR_MODALITIES), META)

# Members of Synthetic-XNOR: one float32 .npy row per modality, its signal coordinates first.
XNOR_MODALITIES = ("a", "b", "c")
XNOR_FIELDS = (*(f"{m}.npy" for m in XNOR_MODALITIES), META)

_MEMBER = re.compile(r"([0-9A-Za-z_-]+)\.([0-9A-Za-z_.-]+)")


def split_member(name: str) -> tuple[str | None, str | None]:
    """(key, field) of a member named `key.field` in a shard's own folder; (None, None) for anything else
    (a path such as `../x.jpg`, an empty key): readers refuse those."""
    match = _MEMBER.fullmatch(name)
    return (match[1], match[2]) if match else (None, None)


def hub_features(columns: dict) -> list[dict]:
    """A card's `dataset_info.features`, in the Hub's YAML form, from {column: kind}: a dtype ("string",
    "int64", "binary", "image", ...), a one-item list for a list of that kind, or a dict for a record."""

    def feature(name, kind):
        if isinstance(kind, dict):
            return {"name": name, "struct": hub_features(kind)}
        if isinstance(kind, list):
            (inner,) = kind
            return {"name": name, "list": hub_features(inner) if isinstance(inner, dict) else inner}
        return {"name": name, "dtype": kind}

    return [feature(name, kind) for name, kind in columns.items()]


def media_features(meta: dict) -> list[dict]:
    """The columns of a media dataset, given its `json` member's: what `datasets.load_dataset(DIR)` reads.

    The audio stays FLAC bytes (decode with soundfile): datasets >= 4 needs torchcodec for its Audio type.
    """
    return hub_features({LABEL: "int64", AUDIO: "binary", IMAGE: "image", META: meta, TEXT: "string",
                         "__key__": "string", "__url__": "string"})


def npy_features(fields: tuple[str, ...], dtype: str, meta: dict) -> list[dict]:
    """The columns of a dataset of one .npy row per modality (XOR, XNOR), given its `json` member's."""
    return hub_features({**{field: [dtype] for field in fields if field != META}, META: meta,
                         "__key__": "string", "__url__": "string"})
