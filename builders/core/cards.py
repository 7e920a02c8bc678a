"""Data cards: each build's Hugging Face dataset card, written by huggingface_hub from the dataset's Jinja
template in data_cards/ and metadata the builder gives for this build."""

from __future__ import annotations

import json
from importlib import resources

import jinja2
import jinja2.meta
from huggingface_hub import DatasetCard, DatasetCardData

from polymodal.builders.core.base import Builder

# Where the text of each Hub licence id our builds carry is; a build under `other` names and links its terms itself.
LICENSE_LINKS = {
    "cc0-1.0": "https://creativecommons.org/publicdomain/zero/1.0/",
    "cc-by-4.0": "https://creativecommons.org/licenses/by/4.0/",
}
SYNTHETIC_LICENSE = "cc0-1.0"  # data drawn from a seed alone (XOR, XNOR) is dedicated to the public domain
HUB_SPLITS = {"val": "validation"}  # the Hub's names for ours; the others are the same

# The Hub's size categories, as huggingface_hub's DatasetCardData lists them (it has no helper that picks one).
SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                   (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"))


def total_samples(manifest: dict) -> int:
    return sum(s["samples"] for s in manifest["splits"].values())


def size_category(total: int) -> str:
    return next((name for bound, name in SIZE_CATEGORIES if total < bound), "1B<n<10B")


def card_data(builder: Builder, manifest: dict) -> DatasetCardData:
    """The card's YAML: the builder's own keys, and what follows from the build (size, files, columns, the link
    of a licence the Hub knows)."""
    meta = builder.card_metadata(manifest)
    if meta["license"] != "other":
        if meta["license"] not in LICENSE_LINKS:
            raise KeyError(f"{builder.name}: licence {meta['license']!r} has no entry in cards.LICENSE_LINKS")
        meta = {"license_name": meta["license"], "license_link": LICENSE_LINKS[meta["license"]], **meta}
    data_files = [{"split": HUB_SPLITS.get(split, split), "path": f"{split}/{builder.prefix}-*.tar"}
                  for split in sorted(manifest["splits"])]
    return DatasetCardData(
        **meta,
        size_categories=[size_category(total_samples(manifest))],
        configs=[{"config_name": "default", "data_files": data_files}],
        dataset_info={"features": builder.features()},
    )


def render_card(builder: Builder, manifest: dict) -> str:
    template = resources.files("polymodal.data_cards").joinpath(builder.card).read_text(encoding="utf-8")
    data = card_data(builder, manifest)
    values = dict(
        dataset_id=manifest["dataset_id"],
        content_digest=manifest["content_digest"],
        builder=manifest["builder"],
        builder_version=manifest["builder_version"],
        polymodal_version=manifest["polymodal_version"],
        seed=manifest["seed"],
        config_json=json.dumps(manifest["config"], indent=2, sort_keys=True),
        splits_table=_splits_table(manifest),
        shard_patterns=", ".join(f"`{split}/{builder.prefix}-{{000000..{s['shards'] - 1:06d}}}.tar`"
                                 for split, s in sorted(manifest["splits"].items())),
        total_samples=f"{total_samples(manifest):,}",
        command=builder.command(),
        **builder.card_fields(manifest),
    )
    # Jinja renders an unknown name as nothing: refuse a template that names a value no one gives.
    unknown = jinja2.meta.find_undeclared_variables(jinja2.Environment().parse(template)) - {
        "card_data", *data.to_dict(), *values}
    if unknown:
        raise KeyError(f"data_cards/{builder.card} names values no one gives: {sorted(unknown)}")
    return str(DatasetCard.from_template(data, template_str=template, **values))


def _splits_table(manifest: dict) -> str:
    lines = ["| split | samples | shards | failed rows |", "|---|---:|---:|---:|"]
    for split, s in sorted(manifest["splits"].items()):
        lines.append(f"| {split} | {s['samples']:,} | {s['shards']} | {s['failed']:,} |")
    return "\n".join(lines)
