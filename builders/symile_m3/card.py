"""The values a Symile-M3 build fills into data_cards/symile_m3.md: counts, departures from the paper, terms."""

from __future__ import annotations

from polymodal.registry import parse_spec

# What each source adds to the card's terms, by source kind.
IMAGE_TERMS = {
    "digits": "Images: scikit-learn's copy of the UCI Optical Recognition of Handwritten Digits data (CC BY 4.0).",
    "imagenet": "Images: ImageNet (ILSVRC 2012), under the ImageNet terms of access: non-commercial research and "
    "education only.",
    "imagefolder": "Images: the terms of the image folder's owner.",
}
AUDIO_TERMS = {
    "espeak": "Audio: speech synthesised offline with espeak-ng (GPL-3.0 program).",
    "commonvoice": "Audio: Mozilla Common Voice clips (CC0-1.0); do not try to identify the speakers.",
}
NAME_TERMS = {
    "babel": "Class names: Babel-ImageNet (Geigle et al. 2023), as shipped in the MIT-licensed clip-benchmark 1.6.2 "
    "wheel. The names derive from BabelNet; check its terms before commercial use.",
    "digits": "Class names: number words from num2words (LGPL-2.1) and a built-in table.",
    "translations": "Class names: the terms of the table's owner.",
}

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
        "terms": "\n".join(f"- {line}" for line in terms(c)),
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


def terms(c) -> list[str]:
    return [
        IMAGE_TERMS[parse_spec(c.images)[0]],
        AUDIO_TERMS[parse_spec(c.audio)[0]],
        NAME_TERMS[parse_spec(c.names)[0]],
    ]
