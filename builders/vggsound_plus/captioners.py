"""Captioners: who writes a sample's text. `template` fills label templates; `hf:MODEL` runs an image-captioning model.

A captioner takes a shard's successful clips at once, so that a model can
batch them, and returns one caption per clip; every sample records the
captioner's name.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from typing import Protocol

import numpy as np

from polymodal.builders.core.media import SourceError
from polymodal.builders.vggsound_plus.index import synonyms
from polymodal.registry import Registry

# Label templates after CLIP's prompt patterns, said of a video and its sound, in the manner of Synergy-CLIP's 72.
# They are polymodal's own wording: JoSangYeon/Synergy-CLIP (dataset.py, commit 6d4642b) carries no license, so
# its list is not copied; docs/reproductions/synergy-clip.md says how the two lists differ. The harness redraws
# one per clip every training epoch (benchmarks/tasks/vggsound_plus/captions.py).
MEDIA = ("video", "clip", "recording", "photo and sound", "photo and audio", "image and sound", "image and audio",
         "picture and sound")
FORMS = ("<a m> of {}.", "<a m> about {}.", "<a m> showing {}.", "this is <a m> of {}.", "a good <m> of {}.",
         "a bad <m> of {}.", "a close-up <m> of {}.", "a clear <m> of {}.", "<a m> of {} I took and recorded.",
         "<a m> of {} you took and recorded.")


def _with_article(noun: str) -> str:
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


TEMPLATES: tuple[str, ...] = tuple(
    form.replace("<a m>", _with_article(m)).replace("<m>", m) for m in MEDIA for form in FORMS
)
MAX_NEW_TOKENS = 30


@dataclass(frozen=True)
class Clip:
    name: str  # <ytid>_<start:06d>, which seeds the template choice
    label: str
    jpeg: bytes


class Captioner(Protocol):
    name: str

    def check(self) -> None: ...
    def tool_versions(self) -> dict[str, str]: ...
    def caption(self, clips: list[Clip]) -> list[str]: ...


class TemplateCaptioner:
    """A random template filled with a random synonym of the label, both drawn from the clip's own RNG.

    The RNG is seeded by (seed, clip name), so a clip's caption does not
    depend on which other rows the build holds or in which order.
    """

    def __init__(self, arg: str, seed: int, batch: int):
        if arg:
            raise SourceError(f"the template captioner takes no argument, got {arg!r}")
        self.name = "template"
        self.seed = seed

    def check(self) -> None:
        pass

    def tool_versions(self) -> dict[str, str]:
        return {"numpy": np.__version__}

    def caption(self, clips: list[Clip]) -> list[str]:
        return [self._one(clip) for clip in clips]

    def _one(self, clip: Clip) -> str:
        digest = int.from_bytes(hashlib.sha256(clip.name.encode()).digest()[:8], "little")
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(digest,)))
        template = TEMPLATES[rng.integers(len(TEMPLATES))]
        words = synonyms(clip.label)
        return template.format(words[rng.integers(len(words))])


class HfCaptioner:
    """An image-to-text model through transformers (BLIP, GIT, VisionEncoderDecoder...), by hub name or local path.

    Greedy decoding, in batches, on the GPU when there is one.
    """

    def __init__(self, model: str, seed: int, batch: int):
        if not model:
            raise SourceError("the hf captioner needs a model: hf:NAME_OR_PATH, "
                              "e.g. hf:Salesforce/blip-image-captioning-base")
        self.name = f"hf:{model}"
        self.model = model
        self.batch = batch

    def check(self) -> None:
        missing = [package for package in ("transformers", "torch") if importlib.util.find_spec(package) is None]
        if missing:
            raise SourceError(f"the hf captioner needs {' and '.join(missing)}; pip install 'polymodal[hf]'")

    def tool_versions(self) -> dict[str, str]:
        return {"transformers": metadata.version("transformers"), "torch": metadata.version("torch")}

    def caption(self, clips: list[Clip]) -> list[str]:
        if not clips:  # a retry whose fetches all failed again: no need to load the model
            return []
        import torch
        from PIL import Image

        processor, tokenizer, model = _load_model(self.model)
        captions = []
        for first in range(0, len(clips), self.batch):
            images = [Image.open(io.BytesIO(c.jpeg)).convert("RGB") for c in clips[first:first + self.batch]]
            inputs = processor(images=images, return_tensors="pt").to(model.device)
            with torch.inference_mode():
                ids = model.generate(**inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=False, num_beams=1)
            captions += [t.strip() for t in tokenizer.batch_decode(ids, skip_special_tokens=True)]
        return captions


@lru_cache(maxsize=1)  # one model per worker process
def _load_model(name: str):
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = AutoModelForImageTextToText.from_pretrained(name).to(device).eval()
    # The processor prepares images; the tokenizer decodes (a VisionEncoderDecoder's processor is images only).
    return AutoProcessor.from_pretrained(name), AutoTokenizer.from_pretrained(name), model


CAPTIONERS: Registry[type] = Registry("captioner", {"template": TemplateCaptioner, "hf": HfCaptioner}, takes_arg={"hf"},
                                      forms="template or hf:MODEL", error=SourceError)


def open_captioner(spec: str, seed: int, batch: int) -> Captioner:
    captioner, arg = CAPTIONERS.spec(spec)
    return captioner(arg, seed, batch)


def fills_templates(spec: str) -> bool:
    """Whether captioner `spec` writes label templates (which a trainer may redraw from the label), not a model's
    description of the frame."""
    return CAPTIONERS.spec(spec)[0] is TemplateCaptioner
