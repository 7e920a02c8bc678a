"""Read a built folder as a user who has only downloaded it: `python -I without_polymodal.py DIR CACHE`, run by
test_load_without_polymodal.py, prints one JSON line of what each stock reader saw.

Run as a script, `import polymodal` fails here before anything else is imported (a meta path finder refuses
the name, and `-I` keeps the repository off sys.path), so nothing below can lean on polymodal's code: 🤗
datasets reads the folder by its card alone, plain webdataset by the brace patterns the card prints, and
soundfile decodes the audio.
"""

import importlib.abc
import sys


class _NoPolymodal(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.partition(".")[0] == "polymodal":
            raise ModuleNotFoundError(f"No module named {name!r} (this reader runs without polymodal)", name=name)
        return None


if __name__ == "__main__":  # first, so that no import below can reach polymodal; the test imports `digest` only
    sys.meta_path.insert(0, _NoPolymodal())

import hashlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import soundfile  # noqa: E402

AUDIO = "flac"  # the only audio member any build writes; a folder without one reports no audio


def polymodal_importable() -> bool:
    try:
        import polymodal  # noqa: F401
    except ImportError:
        return False
    return True


def digest(value) -> str:
    """A stable fingerprint of one column's value as a reader gives it (bytes, text, numbers, lists, images)."""
    if hasattr(value, "tobytes"):  # a PIL image or an array: its pixels or elements
        value = np.asarray(value)
        value = [str(value.dtype), list(value.shape), hashlib.sha256(value.tobytes()).hexdigest()]
    elif isinstance(value, bytes):
        value = hashlib.sha256(value).hexdigest()
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def decode_audio(data: bytes) -> dict:
    audio, rate = soundfile.read(io.BytesIO(data), dtype="int16")
    return {"rate": rate, "frames": len(audio), "channels": 1 if audio.ndim == 1 else audio.shape[1],
            "sha256": hashlib.sha256(audio.tobytes()).hexdigest()}


def read_datasets(folder: Path, cache: Path) -> dict:
    import datasets

    ds = datasets.load_dataset(str(folder), cache_dir=str(cache))
    out = {"rows": {split: len(ds[split]) for split in ds}, "first": {}, "types": {}}
    for split in ds:
        row = ds[split][0]
        out["first"][split] = {column: digest(value) for column, value in row.items() if column != "__url__"}
        out["types"][split] = {column: type(value).__name__ for column, value in row.items()}
        if AUDIO in row:
            out.setdefault("audio", {})[split] = decode_audio(row[AUDIO])
    return out


def read_webdataset(folder: Path) -> dict:
    """Each split through the pattern the card gives for it, `SPLIT/PREFIX-{000000..N}.tar`."""
    import webdataset

    card = (folder / "README.md").read_text(encoding="utf-8")
    patterns = re.findall(r"`([\w-]+/[\w-]+-\{\d{6}\.\.\d{6}\}\.tar)`", card)
    out = {"patterns": patterns, "samples": {}, "keys": {}, "audio": {}}
    for pattern in patterns:
        split = pattern.split("/")[0]
        samples = list(webdataset.WebDataset(str(folder / pattern), shardshuffle=False).decode())
        out["samples"][split] = len(samples)
        out["keys"][split] = [s["__key__"] for s in samples]
        if AUDIO in samples[0]:
            out["audio"][split] = decode_audio(samples[0][AUDIO])  # .decode() leaves FLAC as bytes
    return out


def main():
    folder, cache = Path(sys.argv[1]), Path(sys.argv[2])
    print(json.dumps({
        "polymodal_importable": polymodal_importable(),
        "datasets": read_datasets(folder, cache),
        "webdataset": read_webdataset(folder),
        "polymodal_modules": sorted(m for m in sys.modules if m.partition(".")[0] == "polymodal"),
    }))


if __name__ == "__main__":
    main()
