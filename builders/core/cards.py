"""Data cards: Hugging Face dataset-card templates in data_cards/, filled with a build's real numbers."""

from __future__ import annotations

import json
from importlib import resources
from string import Template

from polymodal.builders.core.base import Builder


def _splits_table(manifest: dict) -> str:
    lines = ["| split | samples | shards | failed rows |", "|---|---:|---:|---:|"]
    for split, s in sorted(manifest["splits"].items()):
        lines.append(f"| {split} | {s['samples']:,} | {s['shards']} | {s['failed']:,} |")
    return "\n".join(lines)


def _data_files_yaml(manifest: dict, prefix: str) -> str:
    return "\n".join(
        f'      - split: {split}\n        path: "{split}/{prefix}-*.tar"' for split in sorted(manifest["splits"])
    )


def render_card(builder: Builder, manifest: dict) -> str:
    template = resources.files("polymodal.data_cards").joinpath(builder.card).read_text(encoding="utf-8")
    total = sum(s["samples"] for s in manifest["splits"].values())
    values = {
        "dataset_id": manifest["dataset_id"],
        "content_digest": manifest["content_digest"],
        "builder": manifest["builder"],
        "builder_version": manifest["builder_version"],
        "polymodal_version": manifest["polymodal_version"],
        "seed": str(manifest["seed"]),
        "config_json": json.dumps(manifest["config"], indent=2, sort_keys=True),
        "splits_table": _splits_table(manifest),
        "data_files": _data_files_yaml(manifest, builder.prefix),
        "total_samples": f"{total:,}",
        "size_category": size_category(total),
        "command": builder.command(),
        **builder.card_fields(manifest),
    }
    return Template(template).substitute(values)


def size_category(total: int) -> str:
    bounds = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
              (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"))
    return next((name for bound, name in bounds if total < bound), "n>100M")
