"""Turn an HTML body into plain text the field readers can use, keeping "label → value" pairs
of tables together.

Parsed by lxml (libxml2's HTML parser: C, linear in the input, no recursion in our walk), so
hostile HTML (thousands of unclosed tags) costs milliseconds. Block elements become line
breaks; the cells of a table row become TAB-separated columns ("Borgers navn<TAB>Karen Lund"),
and paragraphs inside a data cell (Outlook/Word put `<p class=MsoNormal>` in every cell) stay
in their cell. A cell that is page layout (it holds a table or many blocks) keeps its lines.
Inline tags add nothing (`1203<span>85-1234</span>` stays one number), comments (Outlook's
conditional comments), scripts, styles and VML/Office XML islands are dropped.
"""

from __future__ import annotations

import re

from lxml import etree
from lxml import html as lhtml

_BLOCK = frozenset(
    "address article aside blockquote body dd div dl dt fieldset figcaption figure footer form "
    "h1 h2 h3 h4 h5 h6 header hr html li main nav ol p pre section tbody thead tfoot ul".split()
)
_CELL = frozenset({"td", "th"})
_SKIP = frozenset({"script", "style", "head", "title", "template", "noscript", "xml", "object"})
_LAYOUT_BLOCKS = 4  # a cell with more blocks than this is layout, not a value


def _name(el) -> str:  # noqa: ANN001
    tag = el.tag
    if not isinstance(tag, str):
        return ""  # comment, processing instruction, entity
    return tag.rpartition("}")[2].rpartition(":")[2].lower()


def _is_layout_cell(td) -> bool:  # noqa: ANN001
    blocks = 0
    for i, d in enumerate(td.iterdescendants()):
        if i > 60:
            return True
        n = _name(d)
        if n == "table":
            return True
        if n in _BLOCK or n == "br":
            blocks += 1
            if blocks > _LAYOUT_BLOCKS:
                return True
    return False


def html_to_text(html: str, limit: int = 2_000_000) -> str:
    html = html[: limit * 4]
    if not html.strip():
        return ""
    try:
        root = lhtml.document_fromstring(html.encode("utf-8", "surrogatepass"),
                                         parser=lhtml.HTMLParser(encoding="utf-8", remove_comments=True,
                                                                 remove_pis=True))
    except (etree.ParserError, ValueError, etree.XMLSyntaxError):
        return ""
    out: list[str] = []
    size = 0
    skip = 0
    cells: list[bool] = []  # per open table or cell: True = inside a data cell
    rows: list[bool] = []  # per open table: a cell is open in the current row

    def emit(s: str) -> None:
        nonlocal size
        if size < limit and not skip:
            out.append(s)
            size += len(s)

    def brk() -> None:
        emit(" " if cells and cells[-1] else "\n")

    for event, el in etree.iterwalk(root, events=("start", "end")):
        n = _name(el)
        if event == "start":
            if n in _SKIP:
                skip += 1
                continue
            if n == "table":
                cells.append(False)
                rows.append(False)
                emit("\n")
            elif n == "tr":
                if rows:
                    rows[-1] = False
                emit("\n")
            elif n in _CELL:
                if rows and rows[-1]:
                    emit("\t")
                if rows:
                    rows[-1] = True
                cells.append(not _is_layout_cell(el))
            elif n == "br":
                brk()
            elif n in _BLOCK:
                brk()
            if el.text and n and n not in _SKIP:
                emit(re.sub(r"[ \t\r\n\f]+", " ", el.text))
        else:
            if n in _SKIP:
                skip = max(0, skip - 1)
            elif n == "table":
                if cells:
                    cells.pop()
                if rows:
                    rows.pop()
                emit("\n")
            elif n in _CELL:
                if cells:
                    cells.pop()
            elif n == "tr":
                emit("\n")
            elif n in _BLOCK:
                brk()
            if el.tail:
                emit(re.sub(r"[ \t\r\n\f]+", " ", el.tail))
    text = "".join(out).replace("\xa0", " ")
    lines = [re.sub(r"[ ]{2,}", " ", ln).strip(" ") for ln in text.split("\n")]
    # tidy: no TAB at line edges, at most one blank line in a row
    tidy: list[str] = []
    for ln in lines:
        ln = ln.strip("\t ").replace(" \t", "\t").replace("\t ", "\t")
        if ln or (tidy and tidy[-1]):
            tidy.append(ln)
    return "\n".join(tidy).strip()
