"""What a polymodal sample holds: member names, the audio's rate, a clip's length.

The one module of `builders` that the harness imports besides the builders
themselves, so that neither side retypes these. Members follow WebDataset's
`{key}.{field}` layout.
"""

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
