"""Who a result is about: the model (name, source and revision) and the dataset (content digest, or id).

A name alone says nothing about which weights were scored: two submitters
may both call theirs "mlp", and a one-epoch MLP may call itself "symile". So
entries are keyed by name, source and revision, and the reference models'
names belong to the reference implementations alone.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from typing import Any

from polymodal.leaderboard.declarations import reserved_names
from polymodal.leaderboard.text import plain


def short_hash(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


def model_key(card: dict[str, Any]) -> str:
    return short_hash(card["name"], card["source"], card.get("revision"))


def dataset_key(dataset: dict[str, Any]) -> str:
    """What a dataset is: the digest of what was built where a result gives it, else the config's id."""
    return dataset.get("content_digest") or f"id:{dataset['id']}"


def slug(text: str, key: str) -> str:
    """A file name for a page: readable letters of `text`, then the key's hash, so no two pages collide."""
    readable = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40]
    return f"{readable}-{short_hash(key)[:8]}" if readable else short_hash(key)[:8]


def reserved_name_problem(card: dict[str, Any]) -> str | None:
    """Why a card may not use its name: a reference model's, from another source. Case and spacing do not
    make a name another one ("Symile ", "SYMILE")."""
    owners = {name.casefold(): (name, source) for name, source in reserved_names().items()}
    owner = owners.get(plain(card["name"]).casefold())
    if owner is None or card["source"] == owner[1]:
        return None
    return (f"model name {card['name']!r} is reserved for the reference model {owner[0]!r} (source {owner[1]!r}); "
            f"this result comes from source {card['source']!r}: give the model a name of its own in its card")


def model_labels(cards: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Model key -> the name shown; where names repeat, with the source and revision that tell them apart."""
    by_name: dict[str, list[str]] = defaultdict(list)
    for key, card in cards.items():
        by_name[card["name"]].append(key)
    labels = {}
    for name, keys in by_name.items():
        for key in keys:
            card = cards[key]
            labels[key] = name if len(keys) == 1 else f"{name} ({card['source']}@{card.get('revision') or '-'})"
    return labels


def dataset_labels(datasets: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Dataset key -> a label unique on the board. Where labels repeat, the params whose values differ are
    appended (size, seed, ...), and where even those agree, a short id."""
    by_label: dict[str, list[str]] = defaultdict(list)
    for key, dataset in datasets.items():
        by_label[dataset["label"]].append(key)
    labels = {}
    for label, keys in by_label.items():
        if len(keys) == 1:
            labels[keys[0]] = label
            continue
        params = [datasets[k]["params"] for k in keys]
        differing = sorted({p for ps in params for p in ps if len({json.dumps(q.get(p)) for q in params}) > 1})
        for key in keys:
            shown = ", ".join(f"{p}={datasets[key]['params'].get(p)}" for p in differing)
            labels[key] = f"{label} ({shown})" if shown else label
    # Params may still agree (or differ only between some): whatever repeats gets the short id too.
    counts = defaultdict(int)
    for label in labels.values():
        counts[label] += 1
    return {key: f"{label} [{short_id(datasets[key])}]" if counts[label] > 1 else label
            for key, label in labels.items()}


def short_id(dataset: dict[str, Any]) -> str:
    return (dataset.get("content_digest") or dataset["id"])[:8]
