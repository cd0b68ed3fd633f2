"""Find "label → value" pairs in a text segment, however the sender laid them out.

Pure. The field readers decide which labels they want (`config/rules.toml`); this module only
keeps labels and values together:
- "Label: value" on one line, also inside a numbered or bulleted list ("2. Cpr.nr.: …");
- "Label:" alone on a line, the value on the next non-empty line;
- a table row "Label<TAB>value" (HTML and DOCX tables arrive TAB-separated), several pairs
  per row ("Navn<TAB>Karen Lund<TAB>CPR<TAB>…");
- a table whose label row has the values in the row below ("Navn<TAB>CPR" / "Karen<TAB>…").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LIST_MARK = re.compile(r"^\s*(?:\(?\d{1,2}[.)]|[a-hA-H][.)]|[-*•·◦▪►o–])\s+")
_COLON = re.compile(r"^(?P<label>[^:\t]{1,60}?)\s*:\s*(?P<value>.*)$")
_MAX_LABEL_WORDS = 8


@dataclass(frozen=True)
class Pair:
    label: str  # as written, list mark and colon removed
    value: str
    line: int  # line number of the label
    how: str  # same_line | next_line | table_row | table_below


def label_key(label: str) -> str:
    """A label compared with the configured ones: lower case, single spaces, no colon or dots
    at its end, no "*" of a required-field mark."""
    s = re.sub(r"\s+", " ", label.replace("*", " ")).strip(" :.-–\t").lower()
    return s


def _labelish(s: str) -> bool:
    s = s.strip()
    return 0 < len(s) <= 60 and len(s.split()) <= _MAX_LABEL_WORDS and not re.search(r"\d{5,}", s)


def strip_mark(line: str) -> str:
    return _LIST_MARK.sub("", line, count=1)


def pairs(text: str) -> list[Pair]:
    lines = text.split("\n")
    out: list[Pair] = []
    for i, raw in enumerate(lines):
        line = strip_mark(raw).strip()
        if not line:
            continue
        if "\t" in line:
            cells = [c.strip() for c in line.split("\t")]
            for k in range(len(cells) - 1):
                if _labelish(cells[k]):
                    out.append(Pair(cells[k].rstrip(":").strip(), cells[k + 1], i, "table_row"))
            if cells and cells[-1].endswith(":") and _labelish(cells[-1]):
                nxt = _next_value(lines, i)
                if nxt is not None:
                    out.append(Pair(cells[-1].rstrip(":").strip(), nxt, i, "next_line"))
            # a label row with the values in the row below
            if i + 1 < len(lines) and lines[i + 1].count("\t") == line.count("\t") and all(_labelish(c) for c in cells):
                below = [c.strip() for c in lines[i + 1].split("\t")]
                for lab, val in zip(cells, below):
                    out.append(Pair(lab.rstrip(":").strip(), val, i, "table_below"))
            continue
        m = _COLON.match(line)
        if m and _labelish(m.group("label")):
            value = m.group("value").strip()
            if value:
                out.append(Pair(m.group("label").strip(), value, i, "same_line"))
            else:
                nxt = _next_value(lines, i)
                out.append(Pair(m.group("label").strip(), nxt or "", i, "next_line"))
    return out


def _next_value(lines: list[str], i: int) -> str | None:
    """The value on the line(s) after a label that stands alone: the next non-empty line,
    unless that is a label itself."""
    for j in range(i + 1, min(i + 3, len(lines))):
        nxt = strip_mark(lines[j]).strip()
        if not nxt:
            continue
        m = _COLON.match(nxt)
        if nxt.endswith(":") or (m and _labelish(m.group("label")) and m.group("value").strip()
                                 and not re.match(r"^\d", nxt)):
            return None
        return nxt.split("\t")[0] if "\t" in nxt else nxt
    return None


def continuation(text: str, pair: Pair, max_lines: int = 30) -> str:
    """A labelled paragraph: the value plus the lines after it, up to a blank line or the
    next "Label:" line."""
    lines = text.split("\n")
    start = pair.line + (2 if pair.how == "next_line" else 1)
    parts = [pair.value]
    for ln in lines[start:start + max_lines]:
        s = ln.strip()
        if not s:
            if len(" ".join(parts)) < 3:
                continue
            break
        m = _COLON.match(strip_mark(s))
        if m and _labelish(m.group("label")) and not s.endswith("?"):
            break
        parts.append(s)
    return " ".join(p for p in parts if p)
