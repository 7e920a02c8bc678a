"""Class names per language for Symile-M3: the tables a build draws its words from.

A table spec is `babel` (bundled, from Babel-ImageNet), `digits` (number
words for scikit-learn's digits) or `translations:FILE` (the paper's
translations.json form). Each gives `ImageClass`es: an id, the key that finds
its images (an ImageNet synset, a folder name or a digit) and its names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable

from polymodal.builders.core.media import SourceError
from polymodal.registry import Registry

SEPARATOR = "_"  # joins the words of a text, so no name may hold it


@dataclass(frozen=True)
class ImageClass:
    cls_id: int
    key: str
    names: dict[str, str]  # language -> name


def _resource(name: str) -> str:
    return resources.files(__package__).joinpath("resources", name).read_text(encoding="utf-8")


def imagenet_wnids() -> list[str]:
    """The 1000 ImageNet-1k synsets; position k is class k."""
    return [line for line in _resource("imagenet_wnids.txt").splitlines() if line and not line.startswith("#")]


def babel_table(_arg: str, languages: tuple[str, ...]) -> list[ImageClass]:
    names = json.loads(_resource("babel_imagenet_m3.json"))["names"]
    absent = [lang for lang in languages if lang not in names]
    if absent:
        raise SourceError(
            f"the bundled Babel-ImageNet table names classes in {sorted(names)} only, not {absent}; "
            "pass --translations FILE for other languages"
        )
    return [
        ImageClass(k, wnid, {lang: names[lang][str(k)] for lang in languages if str(k) in names[lang]})
        for k, wnid in enumerate(imagenet_wnids())
    ]


# num2words lacks el, hi and zh; these are the standard words for 0-9.
DIGIT_WORDS = {
    "el": ("μηδέν", "ένα", "δύο", "τρία", "τέσσερα", "πέντε", "έξι", "επτά", "οκτώ", "εννέα"),
    "hi": ("शून्य", "एक", "दो", "तीन", "चार", "पाँच", "छह", "सात", "आठ", "नौ"),
    "zh-CN": ("零", "一", "二", "三", "四", "五", "六", "七", "八", "九"),
}


def digit_words(language: str) -> list[str]:
    if language in DIGIT_WORDS:
        return list(DIGIT_WORDS[language])
    from num2words import CONVERTER_CLASSES, num2words

    try:
        words = [num2words(d, lang=language.replace("-", "_")) for d in range(10)]
    except NotImplementedError:
        known = sorted({*DIGIT_WORDS, *(code.replace("_", "-") for code in CONVERTER_CLASSES)})
        raise SourceError(f"no number words for language {language!r}; known: {', '.join(known)}") from None
    if language == "ja":
        from polymodal.builders.symile_m3.speech import kana

        # num2words writes kanji, the very characters of zh-CN; kana keep the languages apart in a text.
        words = [kana(w) for w in words]
    return words


def digits_table(_arg: str, languages: tuple[str, ...]) -> list[ImageClass]:
    words = {lang: digit_words(lang) for lang in languages}
    return [ImageClass(d, str(d), {lang: words[lang][d] for lang in languages}) for d in range(10)]


def translations_table(arg: str, languages: tuple[str, ...]) -> list[ImageClass]:
    """{class: {"synset_id": ..., "cls_id": ..., <lang>: name}}; the key is the synset id, else the class name."""
    path = Path(arg)
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise SourceError(f"cannot read the class-name table {path}: {err}") from None
    table = []
    for position, (name, entry) in enumerate(entries.items()):
        names = {lang: entry[lang] for lang in languages if entry.get(lang)}
        table.append(ImageClass(int(entry.get("cls_id", position)), entry.get("synset_id", name), names))
    return table


TABLES: Registry[Callable[[str, tuple[str, ...]], list[ImageClass]]] = Registry("class-name table", {
    "babel": babel_table,
    "digits": digits_table,
    "translations": translations_table,
}, takes_arg={"translations"}, forms="digits, babel or translations:FILE", error=SourceError)


def load_table(spec: str, languages: tuple[str, ...]) -> list[ImageClass]:
    """The classes of table `spec` that are named in every language, by class id."""
    make_table, arg = TABLES.spec(spec)
    table = make_table(arg, languages)
    for what, values in (("class id", [c.cls_id for c in table]), ("key", [c.key for c in table])):
        if len(set(values)) != len(values):
            raise SourceError(f"the class-name table {spec!r} gives two classes the same {what}")
    named = [c for c in table if all(lang in c.names for lang in languages)]
    for c in named:
        for lang, word in c.names.items():
            if not word.strip() or SEPARATOR in word:
                raise SourceError(
                    f"class {c.cls_id} ({c.key}) has the name {word!r} in {lang}: "
                    f"names must be non-empty and hold no {SEPARATOR!r}"
                )
    return sorted(named, key=lambda c: c.cls_id)
