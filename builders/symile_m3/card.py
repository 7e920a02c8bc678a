"""The values a Symile-M3 build fills into data_cards/symile_m3.md: counts, departures from the paper, terms."""

from __future__ import annotations

from dataclasses import dataclass

from polymodal.registry import parse_spec


@dataclass(frozen=True)
class Terms:
    """What a source brings to a build's card: a line of its terms; its Hub licence id (None where the source
    holds no rights: speech synthesised here, number words) and, for `other`, where its terms are published;
    the Hub's `source_datasets` entry for a source that is a dataset of its own; what it holds about people;
    and, where its authors ask for it, the attribution and BibTeX to print beside Symile's."""

    text: str
    personal: str
    license: str | None = None
    link: str | None = None
    source: str | None = None
    attribution: str | None = None
    bibtex: str | None = None


# By source kind.
IMAGE_TERMS = {
    "digits": Terms("Images: scikit-learn's copy of the UCI Optical Recognition of Handwritten Digits data "
                    "(CC BY 4.0).", "The images are handwritten digits by anonymous writers of the UCI data set.",
                    "cc-by-4.0", source="extended|other-uci-optical-recognition-of-handwritten-digits"),
    "imagenet": Terms("Images: ImageNet (ILSVRC 2012), under the ImageNet terms of access: non-commercial research "
                      "and education only.", "ImageNet images were collected from the web and show people, some "
                      "identifiably, who did not consent to this use.", "other", "https://image-net.org/download.php",
                      "extended|ILSVRC/imagenet-1k"),
    "imagefolder": Terms("Images: the terms of the image folder's owner.",
                         "Whether the images show people depends on the folder they came from.", "other",
                         source="extended|other-image-folder"),
}
AUDIO_TERMS = {
    "espeak": Terms("Audio: speech synthesised offline with espeak-ng (GPL-3.0 program).",
                    "The audio is synthetic speech (espeak-ng): no person's voice is in it."),
    "commonvoice": Terms("Audio: Mozilla Common Voice clips (CC0-1.0); do not try to identify the speakers.",
                         "The audio is Common Voice recordings of volunteers' voices. The volunteers agreed to "
                         "publication, but a voice can identify a person: do not try to identify the speakers.",
                         "cc0-1.0", source="extended|other-common-voice"),
}
NAME_TERMS = {
    "babel": Terms("Class names: Babel-ImageNet (Geigle et al., ACL 2024), as shipped in the MIT-licensed "
                   "clip-benchmark 1.6.2 wheel. The names derive from BabelNet; check its terms before commercial "
                   "use.", "The texts are ImageNet class names.", "other",
                   "https://github.com/gregor-ge/Babel-ImageNet", "extended|other-babel-imagenet",
                   "The class names are Babel-ImageNet's (Geigle, Timofte and Glavaš, ACL 2024, arXiv 2306.08658), "
                   "linked through WordNet synsets to BabelNet: cite it beside Symile when you use this build.",
                   r"""@inproceedings{geigle-etal-2024-babel,
  title     = {Babel-{I}mage{N}et: Massively Multilingual Evaluation of Vision-and-Language Representations},
  author    = {Geigle, Gregor and Timofte, Radu and Glava{\v{s}}, Goran},
  booktitle = {Proceedings of the 62nd Annual Meeting of the Association for Computational Linguistics (Volume 1: Long Papers)},
  year      = {2024},
  pages     = {5064--5084},
  doi       = {10.18653/v1/2024.acl-long.277}
}"""),
    "digits": Terms("Class names: number words from num2words (LGPL-2.1) and a built-in table.",
                    "The texts are number words."),
    "translations": Terms("Class names: the terms of the table's owner.", "The texts are the table's class names.",
                          "other", source="extended|other-translations"),
}
# From the least to the most binding: the build takes the most binding of its sources' licences.
LICENSE_ORDER = ("cc0-1.0", "cc-by-4.0", "other")

# How each audio source fills its pools, by source kind.
AUDIO_NOTES = {
    "espeak": "The pool of a language is every used class name of that language, each read once by espeak-ng "
    "(voice `cmn-latn-pinyin` on tone-numbered pinyin for zh-CN; kanji turned into kana for ja) and resampled from "
    "22.05 kHz to 16 kHz. A sample's clip is drawn from the pool of its language independently of its class, as the "
    "paper draws any Common Voice clip of the language, so the spoken words say nothing about the sample.",
    "commonvoice": "The pool of a language is its `train.tsv` (the paper samples the Common Voice train split), less "
    "the clips `clip_durations.tsv` gives 0 ms. Each clip is decoded by ffmpeg to 16 kHz mono; one that decodes to "
    "nothing is replaced by the next clip of the pool.",
}


def card_fields(c, manifest: dict) -> dict[str, str]:
    """`c` is an M3Config; `manifest` carries the build's `info` (class counts, pools, clashes)."""
    info = manifest["info"]
    return {
        "set_name": info["language_set"],
        "languages": ", ".join(c.languages),
        "words": str(len(c.languages)),
        "images": c.images,
        "audio": c.audio,
        "audio_notes": AUDIO_NOTES[parse_spec(c.audio)[0]],
        "names": c.names,
        "named": f"{info['classes_named_in_every_language']:,}",
        "classes": f"{info['classes_used']:,}",
        "chance": f"{1 / info['classes_used']:.4f}",
        "pool": ", ".join(f"{lang} {n:,}" for lang, n in info["audio_pool"].items()),
        "shared_names": str(info["names_shared_by_classes"]),
        "shared_words": str(info["words_shared_by_languages"]),
        "missing_p": f"{c.missing_p:g}",
        "differences": differences_from_paper(c),
        "terms": "\n".join(f"- {t.text}" for t in terms(c)),
        "personal": "\n\n".join(t.personal for t in terms(c)),
        "attributions": "\n\n".join(t.attribution for t in terms(c) if t.attribution),
        "source_bibtex": "\n\n".join(t.bibtex for t in terms(c) if t.bibtex),
    }


def card_metadata(c, manifest: dict) -> dict:
    """The card's YAML keys. The build's licence is the most binding of its sources'; under `other`, the link is
    the terms of the first source that publishes them (none for a user's folder or table). Every language of the build, by its ISO 639 code (the Hub's; zh-CN is zh)."""
    licensed = [t for t in terms(c) if t.license]
    license = max((t.license for t in licensed), key=LICENSE_ORDER.index)
    links = [t.link for t in licensed if t.license == license and t.link]
    other = {"license_name": "symile-m3-source-terms", "license_link": links[0] if links else None}
    return {
        "pretty_name": f"Symile-M3 ({manifest['info']['language_set']}: {', '.join(c.languages)})",
        "license": license,
        **(other if license == "other" else {}),
        "language": sorted({lang.split("-")[0].lower() for lang in c.languages}),
        "multilinguality": "multilingual",  # a build has two languages or more
        "task_categories": ["zero-shot-classification", "feature-extraction"],
        "source_datasets": [t.source for t in terms(c) if t.source] + ["original"],  # original: the texts, the draws
        "tags": ["polymodal", "multimodal", "multilingual", "contrastive-learning", "image", "audio", "text"],
    }


def differences_from_paper(c) -> str:
    """Where this build departs from the paper, one bullet each."""
    lines = []
    image_kind = parse_spec(c.images)[0]
    if image_kind == "digits":
        lines.append("- **Images:** scikit-learn's 1,797 handwritten 8×8 digits (10 classes, shown 32×32) instead of "
                     "ImageNet's 1,000 classes, so chance is 1/10, not 1/1000.")
    elif image_kind == "imagefolder":
        lines.append("- **Images:** an image folder instead of ImageNet.")
    if c.names == "babel":
        lines.append("- **Class names:** human-curated Babel-ImageNet names instead of the paper's Google Translate "
                     "names, which are not public. Babel does not name every class in every language, so only the "
                     "classes named in all of them are used, not all 1,000, and clashing names are not fixed by hand.")
    elif c.names == "digits":
        lines.append("- **Class names:** number words: num2words where it knows the language, a built-in table for "
                     "el, hi and zh-CN, which it lacks; Japanese in kana, so that it never shares a word with zh-CN.")
    if parse_spec(c.audio)[0] == "espeak":
        lines.append("- **Audio:** espeak-ng text-to-speech instead of Common Voice recordings. Only the language of "
                     "a clip matters to the task, but one synthetic voice per language is far easier to tell apart "
                     "than crowd-sourced speech, and the pool is small (class names, not sentences).")
    return "\n".join(lines) or "- None in the sources: ImageNet images, Common Voice audio and the given class names."


def terms(c) -> list[Terms]:
    return [
        IMAGE_TERMS[parse_spec(c.images)[0]],
        AUDIO_TERMS[parse_spec(c.audio)[0]],
        NAME_TERMS[parse_spec(c.names)[0]],
    ]
