"""Read one split of a built folder with open_clip's and CLIP_benchmark's own WebDataset loaders; print what
each yielded as one JSON line. `python stock_readers.py DIR SPLIT`, run by test_stock_readers.py.

Where torchvision is not installed, a stand-in takes its place: this project's machines cap it, since PyPI's
torchvision wheels are CUDA builds that break transformers beside a CPU torch. Neither loader's WebDataset path
uses torchvision: open_clip_train/data.py imports `torchvision.datasets` for its other formats, and
clip_benchmark/datasets/builder.py imports torchvision for its other datasets. Anything that does call the
stand-in raises, so it cannot pass for the real thing.
"""

import argparse
import importlib.abc
import importlib.machinery
import importlib.util
import json
import sys
import types
from pathlib import Path


class _Absent:
    def __init__(self, *args, **kwargs):
        raise RuntimeError("torchvision is not installed here")


class _TorchvisionStandIn(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """`torchvision` and every `torchvision.*` module, each of whose names is `_Absent`."""

    def find_spec(self, name, path, target=None):
        if name.partition(".")[0] == "torchvision":
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__path__ = []

        def attribute(name):
            if name.startswith("__"):
                raise AttributeError(name)
            return _Absent

        module.__getattr__ = attribute
        return module

    def exec_module(self, module):
        pass


def open_clip_tokenizer():
    """open_clip's SimpleTokenizer (what `get_tokenizer('ViT-B-32')` gives), with its bundled BPE vocabulary,
    loaded from its own file: the package's __init__ builds its image transforms from torchvision."""
    folder = Path(importlib.util.find_spec("open_clip").submodule_search_locations[0])
    spec = importlib.util.spec_from_file_location("open_clip_tokenizer", folder / "tokenizer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SimpleTokenizer(context_length=77)


def preprocess(image):
    """A PIL image as the 3x32x32 float tensor a small CLIP takes (torchvision's transforms may be absent)."""
    import numpy as np
    import torch

    pixels = np.asarray(image.convert("RGB").resize((32, 32)), dtype=np.float32) / 255
    return torch.from_numpy(pixels).permute(2, 0, 1)


def read_open_clip(shards: list[str], batch_size: int) -> dict:
    """Through `get_wds_dataset`'s validation path. Its training path differs only before the same filter,
    decode, rename, tokenize and batch stages, and it needs webdataset <= 0.2.86 (open_clip's `training` extra
    pins that; webdataset 1.0, which polymodal pins, ends each shard with a marker its tar grouper rejects)."""
    from open_clip_train.data import get_wds_dataset

    tokenizer = open_clip_tokenizer()
    # What open_clip's trainer parses from `--val-data A::B --batch-size N --workers 0`.
    args = argparse.Namespace(val_data="::".join(shards), val_num_samples=None, batch_size=batch_size, workers=0)
    loader = get_wds_dataset(args, preprocess, is_train=False, tokenizer=tokenizer).dataloader
    batches = list(loader)
    return {
        "batch_sizes": [len(images) for images, _ in batches],
        "image_shapes": sorted({tuple(images.shape[1:]) for images, _ in batches}),
        "tokens": sorted(row for _, texts in batches for row in texts.tolist()),
        "expected_tokens": sorted(tokenizer(texts_in(shards)).tolist()),
    }


def read_clip_benchmark(folder: Path, split: str, shards: list[str]) -> list:
    """CLIP_benchmark wants `SPLIT/0.tar ... SPLIT/{n-1}.tar` and `SPLIT/nshards.txt`: a view of links."""
    from clip_benchmark.datasets.builder import build_wds_dataset

    view = folder / "clip-benchmark-view" / split
    view.mkdir(parents=True)
    for n, shard in enumerate(shards):
        (view / f"{n}.tar").symlink_to(shard)
    (view / "nshards.txt").write_text(str(len(shards)))
    dataset = build_wds_dataset("ours", transform=lambda image: list(image.size), split=split,
                                data_dir=str(view.parent))
    return [[size, label] for size, label in dataset]


def texts_in(shards: list[str]) -> list[str]:
    import tarfile

    texts = []
    for shard in shards:
        with tarfile.open(shard) as tar:
            texts += [tar.extractfile(m).read().decode() for m in tar if m.name.endswith(".txt")]
    return texts


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", type=Path)
    parser.add_argument("split")
    parser.add_argument("--view", type=Path, required=True, help="a new folder for CLIP_benchmark's layout")
    args = parser.parse_args()
    if importlib.util.find_spec("torchvision") is None:
        sys.meta_path.insert(0, _TorchvisionStandIn())
    shards = [str(p) for p in sorted((args.folder / args.split).glob("*.tar"))]
    print(json.dumps({"open_clip": read_open_clip(shards, batch_size=4),
                      "clip_benchmark": read_clip_benchmark(args.view, args.split, shards)}))


if __name__ == "__main__":
    main()
