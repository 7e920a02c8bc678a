"""The VGGSound index: its two CSV forms, the 309 classes, and the split/class/limit filters.

Rows come as `ytid,start,label,split` (the full VGGSound CSV) or as
`<ytid>_<start:06d>.mp4,<label>` (VGGSounder's per-split files, whose split
the caller names). Neither has a header. A row that cannot be read is kept,
with the reason and its line number, so that it fails on its own and every
other row goes on.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from polymodal.builders.core.media import SourceError

SPLITS = ("train", "test")
CLASSES_RESOURCE = "vggsound_classes.csv"
YTID = re.compile(r"[A-Za-z0-9_-]{11}")
CLIP_NAME = re.compile(r"(?P<ytid>.+)_(?P<start>[^_]*)\.mp4")
MAX_LINE_BYTES = 4096  # a real row is under 200 bytes; a longer line is not an index row
SHOWN_CHARS = 200  # of a bad line, kept in its failure record


@dataclass(frozen=True)
class IndexRow:
    line: int  # 1-based line of the index file
    split: str
    ytid: str = ""
    start: int = 0  # second of the YouTube video where the 10 s clip begins
    label: str = ""
    cls: int = -1  # class index, 0..308
    problem: str = ""  # why the row cannot be used; empty for a good row
    failure: str = "bad-index-row"  # the failure kind of a row with a problem
    text: str = ""  # the raw line, kept for bad rows only

    @property
    def ok(self) -> bool:
        return not self.problem

    @property
    def clip_name(self) -> str:
        """VGGSound's name of the cut clip, without extension."""
        return f"{self.ytid}_{self.start:06d}"


@lru_cache(maxsize=1)
def class_index() -> dict[str, int]:
    """Display name -> class index, from the bundled VGGSound class list."""
    text = resources.files(__package__).joinpath("resources", CLASSES_RESOURCE).read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    return {row["display_name"]: int(row["index"]) for row in csv.DictReader(lines)}


def synonyms(label: str) -> list[str]:
    """VGGSound labels list synonyms with commas: "dog barking" or "donkey, ass braying"."""
    return [part.strip() for part in label.split(",") if part.strip()]


def parse_row(fields: list[str], line: int, default_split: str) -> IndexRow:
    """One CSV row in either form; `default_split` is the split of the two-column form, which names none."""
    text = ",".join(fields)
    if len(fields) == 4:
        ytid, start, label, split = (f.strip() for f in fields)
    elif len(fields) == 2 and (match := CLIP_NAME.fullmatch(fields[0].strip())):
        ytid, start, label, split = match["ytid"], match["start"], fields[1].strip(), default_split
    else:
        return IndexRow(line, default_split, problem="expected `ytid,start,label,split` or "
                        "`<ytid>_<start:06d>.mp4,<label>`", text=text)
    if split not in SPLITS:
        return IndexRow(line, default_split, problem=f"unknown split {split!r}", text=text)
    known = class_index()
    if not YTID.fullmatch(ytid):
        problem = f"malformed YouTube id {ytid!r}"
    elif not (start.isascii() and start.isdigit()):  # isdigit() alone admits "²" and other digits int() refuses
        problem = f"start {start!r} is not a whole number of seconds"
    elif label not in known:
        problem = f"unknown label {label!r}"
    else:
        return IndexRow(line, split, ytid, int(start), label, known[label])
    return IndexRow(line, split, ytid, label=label if label in known else "", problem=problem, text=text)


def read_index(path: str, default_split: str) -> list[IndexRow]:
    """Every row of the index, in file order. Nothing in the file stops the others: a line that is not
    UTF-8, is too long, or is not CSV becomes a bad row; a second copy of a row fails as a duplicate."""
    if not path or not Path(path).is_file():
        raise SourceError(f"VGGSound index {path!r} does not exist; give the CSV with --index")
    rows, first_line = [], {}
    for line, raw in enumerate(Path(path).read_bytes().split(b"\n"), start=1):
        row = _read_line(raw.removesuffix(b"\r"), line, default_split)
        if row is None:
            continue
        if row.ok:
            seen = first_line.setdefault((row.split, row.ytid, row.start), line)
            if seen != line:
                row = IndexRow(line, row.split, row.ytid, row.start, row.label, problem=f"duplicate of line {seen}",
                               failure="duplicate-row", text=_shown(raw))
        rows.append(row)
    return rows


def _read_line(raw: bytes, line: int, default_split: str) -> IndexRow | None:
    if len(raw) > MAX_LINE_BYTES:
        return IndexRow(line, default_split, problem=f"a line of {len(raw):,} bytes; an index row holds at most "
                        f"{MAX_LINE_BYTES:,}", text=_shown(raw))
    try:
        # utf-8-sig on the first line only: a BOM that an editor wrote there is no part of the YouTube id.
        text = raw.decode("utf-8-sig" if line == 1 else "utf-8")
    except UnicodeDecodeError as err:
        return IndexRow(line, default_split, problem=f"not UTF-8 text ({err.reason} at byte {err.start})", text=_shown(raw))
    if not text.strip():  # blank lines, e.g. a trailing one, are no rows
        return None
    try:
        fields = next(csv.reader([text]))
    except csv.Error as err:
        return IndexRow(line, default_split, problem=f"not a CSV row: {err}", text=_shown(raw))
    return parse_row(fields, line, default_split)


def _shown(raw: bytes) -> str:
    """A bad line as the failure record shows it: decoded leniently and cut, so no record grows unbounded."""
    text = raw.decode("utf-8", errors="replace")
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…"


def select(path: str, default_split: str, splits: tuple[str, ...], classes: tuple[str, ...],
           limit: int) -> dict[str, tuple[IndexRow, ...]]:
    """The rows of each wanted split, in file order: of the wanted classes, at most `limit` (0: all).

    A bad row whose label cannot be read stays whatever the class filter: it
    cannot be told apart from a wanted one, and it must be reported.
    """
    stat = Path(path).stat() if path and Path(path).is_file() else None
    version = (stat.st_mtime_ns, stat.st_size) if stat else None  # a long-lived worker must see an edited index
    return _select(path, version, default_split, splits, classes, limit)


@lru_cache(maxsize=4)  # each shard worker reads the index once
def _select(path: str, version, default_split: str, splits: tuple[str, ...], classes: tuple[str, ...],
            limit: int) -> dict[str, tuple[IndexRow, ...]]:
    wanted = set(classes)
    chosen: dict[str, list[IndexRow]] = {split: [] for split in splits}
    for row in read_index(path, default_split):
        if row.split not in chosen or (wanted and row.label and row.label not in wanted):
            continue
        if not limit or len(chosen[row.split]) < limit:
            chosen[row.split].append(row)
    return {split: tuple(rows) for split, rows in chosen.items()}
