"""Making file-supplied strings safe to show: in Markdown, on a terminal and (through jinja2) in HTML.

Every string in a result file (model names, labels, licenses, file names,
rejection reasons quoting them) is the submitter's. Shown raw, it could
inject markup (`<img onerror=...>`), links, a Markdown heading (a newline) or
terminal escape sequences.
"""

from __future__ import annotations

import html
import re

# C0 and C1 controls (ESC starts terminal sequences), DEL, and the bidirectional overrides that make text
# display in another order than it reads ("Trojan Source"). Tabs and newlines go too: one value, one line.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# What still means something in a Markdown table cell once HTML is escaped: a cell break, a link, code.
_MARKDOWN = re.compile(r"([\\`|\[\]])")


def plain(text: object) -> str:
    """One line of printable text: control characters become spaces, runs of whitespace one space."""
    return " ".join(_CONTROL.sub(" ", str(text)).split())


def lines(text: object) -> str:
    """Control characters stripped but newlines kept: for preformatted blocks (a card's config as JSON)."""
    return "\n".join(_CONTROL.sub(" ", line).rstrip() for line in str(text).split("\n"))


def safe(text: object) -> str:
    """`plain`, HTML-escaped: what the terminal is shown, so a pasted line cannot carry markup either."""
    return html.escape(plain(text), quote=False)  # quotes matter only inside tags, and "<" is escaped


def markdown(text: object) -> str:
    """`safe`, with Markdown's table, code and link syntax escaped too: what report.md holds."""
    return _MARKDOWN.sub(r"\\\1", safe(text))
