"""The values a VGG-sound+ build fills into data_cards/vggsound_plus.md: sources, captioner, success and failures."""

from __future__ import annotations

from polymodal.builders.vggsound_plus.captioners import TEMPLATES
from polymodal.builders.vggsound_plus.clips import MIN_AUDIO_SECONDS
from polymodal.builders.vggsound_plus.failures import KINDS
from polymodal.registry import parse_spec

SOURCE_NOTES = {
    "youtube": "YouTube, through the yt-dlp Python API: one format holding video and audio, with only the 10 s "
    "window downloaded where the format allows.",
    "url": "the mirror `{arg}` (whole videos), through the yt-dlp Python API, with only the 10 s window downloaded "
    "where the server allows.",
    "clip-url": "the mirror `{arg}` (clips already cut), through the yt-dlp Python API.",
    "dir": "a local folder of clips already cut.",
}
CAPTIONER_NOTES = {
    "template": "label templates in Synergy-CLIP's style (\"a photo and sound of {{}}\"): each clip draws one of "
    "{templates} templates and one of its label's comma-separated synonyms from an RNG seeded by (seed, clip).",
    "hf": "the image-captioning model `{arg}` through transformers, greedy decoding, on the clip's frame.",
}
TERMS = ("VGGSound's index and class names: Oxford VGG, CC BY 4.0 (the class list via VGGSounder, Apache-2.0). "
         "Frames and audio: cut from YouTube videos, whose rights stay with their uploaders; use them for research "
         "under the terms of your jurisdiction, and honour takedown requests.")
# The card's YAML keys. VGGSound's page states its CC BY 4.0 licence and that the videos' copyright stays with
# their owners: the terms of the frames and audio are not one licence the Hub knows.
METADATA = {
    "pretty_name": "VGG-sound+ (image, audio, caption)",
    "license": "other",
    "license_name": "vggsound-youtube",
    "license_link": "https://www.robots.ox.ac.uk/~vgg/data/vggsound/",
    "task_categories": ["zero-shot-classification", "audio-classification", "feature-extraction"],
    "source_datasets": ["extended|other-vggsound"],
    "tags": ["polymodal", "multimodal", "contrastive-learning", "image", "audio", "text", "video"],
}


def card_fields(c, manifest: dict) -> dict[str, str]:
    """`c` is a VggConfig; `manifest` carries the build's counts and its errors by kind."""
    splits = manifest["splits"]
    rows = sum(s["rows"] for s in splits.values())
    samples = sum(s["samples"] for s in splits.values())
    source_kind, source_arg = parse_spec(c.source)
    captioner_kind, captioner_arg = parse_spec(c.captioner)
    return {
        "source_note": SOURCE_NOTES[source_kind].format(arg=source_arg),
        "captioner": c.captioner,
        "captioner_note": CAPTIONER_NOTES[captioner_kind].format(templates=len(TEMPLATES), arg=captioner_arg),
        "frame_size": f"{c.frame_size} px on the shorter side" if c.frame_size else "the source's size",
        "min_audio": f"{MIN_AUDIO_SECONDS:g}",
        "rows": f"{rows:,}",
        "success_rate": f"{samples / rows:.1%}" if rows else "n/a",
        "errors_table": errors_table(manifest["errors"]),
        "terms": TERMS,
    }


def card_metadata(c, manifest: dict) -> dict:
    """Template captions are English; an hf captioner writes in its model's language, which is not known here."""
    english = parse_spec(c.captioner).kind == "template"
    return {**METADATA, **({"language": ["en"], "multilinguality": "monolingual"} if english else {})}


def errors_table(errors: dict[str, int]) -> str:
    if not errors:
        return "No row failed."
    lines = ["| kind | rows | meaning |", "|---|---:|---|"]
    by_count = sorted(errors.items(), key=lambda kv: (-kv[1], kv[0]))
    lines += [f"| `{kind}` | {count:,} | {KINDS[kind]} |" for kind, count in by_count]
    return "\n".join(lines)
