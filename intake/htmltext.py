"""Turn an HTML body into plain text the field readers can use (stdlib `html.parser`).

Block elements become line breaks, table cells become TAB-separated columns (so a row
"Borgers navn | Karen Lund" reads as "Borgers navn<TAB>Karen Lund"), inline tags add nothing
(so `120385<span>-</span>1234` stays one number), entities are decoded, script/style dropped.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_BLOCK = frozenset(
    "address article aside blockquote body dd div dl dt fieldset figcaption figure footer form "
    "h1 h2 h3 h4 h5 h6 header hr html li main nav ol p pre section table tbody thead tfoot tr ul".split()
)
_CELL = frozenset({"td", "th"})
_SKIP = frozenset({"script", "style", "head", "title", "template", "noscript"})


class _TextParser(HTMLParser):
    def __init__(self, limit: int) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.size = 0
        self.limit = limit
        self.skip_depth = 0
        self.cell_open = False

    def _emit(self, s: str) -> None:
        if self.size < self.limit:
            self.out.append(s)
            self.size += len(s)

    def handle_starttag(self, tag: str, attrs) -> None:  # noqa: ANN001
        if tag in _SKIP:
            self.skip_depth += 1
        elif tag == "br":
            self._emit("\n")
        elif tag in _CELL:
            if self.cell_open:
                self._emit("\t")
            self.cell_open = True
        elif tag in _BLOCK:
            if tag == "tr":
                self.cell_open = False
            self._emit("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip_depth = max(0, self.skip_depth - 1)
        elif tag in _BLOCK:
            if tag == "tr":
                self.cell_open = False
            self._emit("\n")

    def handle_startendtag(self, tag: str, attrs) -> None:  # noqa: ANN001
        if tag == "br":
            self._emit("\n")

    def handle_data(self, data: str) -> None:
        if not self.skip_depth:
            # HTML white space (including source line breaks) is one space.
            self._emit(re.sub(r"[ \t\r\n\f]+", " ", data))


def html_to_text(html: str, limit: int = 2_000_000) -> str:
    p = _TextParser(limit)
    try:
        p.feed(html[: limit * 4])
        p.close()
    except Exception:  # the stdlib parser is lenient; be safe against anything it may raise
        pass
    text = "".join(p.out).replace("\xa0", " ")
    lines = [re.sub(r"[ ]{2,}", " ", ln).strip(" ") for ln in text.split("\n")]
    # tidy: no TAB at line edges, at most one blank line in a row
    out: list[str] = []
    for ln in lines:
        ln = ln.strip("\t ").replace(" \t", "\t").replace("\t ", "\t")
        if ln or (out and out[-1]):
            out.append(ln)
    return "\n".join(out).strip()
