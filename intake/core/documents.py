"""Read attached forms (PDF, DOCX) as text: page text, AcroForm fields, DOCX paragraphs, tables
and content controls. Pure: bytes in, a `Document` out, never an exception.

Untrusted documents are read within limits (`DocumentLimits`): bytes, pages, unpacked size of
a DOCX, characters of text, and CPU time (a profiling timer, where the caller runs in the main
thread — the triage worker does). Memory is bounded by the worker's address-space limit: a
`MemoryError` is "could not read". A document that cannot be read says so (`status`), and the
triage treats that as "a person must look", never as "missing". No OCR: a scanned form has no
text (`no_text`).
"""

from __future__ import annotations

import io
import re
import signal
import threading
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass

PDF_TYPES = frozenset({"application/pdf", "application/x-pdf"})
DOCX_TYPES = frozenset({"application/vnd.openxmlformats-officedocument.wordprocessingml.document"})
CHECKED, UNCHECKED = "☒", "☐"


@dataclass(frozen=True)
class DocumentLimits:
    max_bytes: int = 15 * 1024 * 1024  # larger files are case files, not forms: not read
    max_pages: int = 60  # a PDF with more pages is not read as a form
    text_pages: int = 25  # pages whose text is read
    max_chars: int = 200_000  # text kept per document
    docx_unpacked: int = 40 * 1024 * 1024  # sum of a DOCX's unpacked parts
    cpu_seconds: float = 2.0  # per document


@dataclass
class Document:
    name: str
    kind: str  # pdf | docx
    status: str  # read | no_text | encrypted | unreadable | too_large | too_costly
    text: str = ""  # form fields as "Label: value" / "☒ Label" lines, then the page text
    fields: int = 0  # form fields with a value
    checkboxes: bool = False  # the form has check box fields: they, not the printed options, say what is chosen
    field_text: str = ""  # the field lines alone

    @property
    def readable(self) -> bool:
        return self.status == "read"


def kind_of(filename: str, content_type: str) -> str | None:
    name = filename.lower()
    if content_type in PDF_TYPES or name.endswith(".pdf"):
        return "pdf"
    if content_type in DOCX_TYPES or name.endswith(".docx"):
        return "docx"
    return None


class _Timeout(Exception):
    pass


@contextmanager
def _cpu_budget(seconds: float):
    """Raise `_Timeout` in this thread after `seconds` of process CPU time (main thread only;
    elsewhere the worker's own limits apply)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def _expire(signum, frame):  # noqa: ANN001, ARG001
        raise _Timeout()

    old = signal.signal(signal.SIGPROF, _expire)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, old)


def read(name: str, kind: str, data: bytes, limits: DocumentLimits | None = None) -> Document:
    limits = limits or DocumentLimits()
    if len(data) > limits.max_bytes:
        return Document(name, kind, "too_large")
    try:
        with _cpu_budget(limits.cpu_seconds):
            doc = _read_pdf(name, data, limits) if kind == "pdf" else _read_docx(name, data, limits)
    except _Timeout:
        return Document(name, kind, "too_costly")
    except MemoryError:
        return Document(name, kind, "too_costly")
    except RecursionError:
        return Document(name, kind, "unreadable")
    except Exception:  # any parser error: the document could not be read
        return Document(name, kind, "unreadable")
    doc.text = doc.text[: limits.max_chars]
    if doc.status == "read" and len(re.findall(r"[^\W\d_]", doc.text)) < 20:
        doc.status = "no_text"
    return doc


# --- PDF (pypdf) -------------------------------------------------------------------------------

def _field_label(f: dict) -> str:
    for key in ("/TU", "/T"):
        v = f.get(key)
        if v:
            # technical names read as words: "borger_navn" is "borger navn"
            return re.sub(r"[_\s]+", " ", str(v)).strip()
    return ""


def _read_pdf(name: str, data: bytes, limits: DocumentLimits) -> Document:
    import logging

    from pypdf import apply_configuration

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    if not data.lstrip()[:1024].startswith(b"%PDF") and b"%PDF" not in data[:1024]:
        return Document(name, "pdf", "unreadable")
    # pypdf's own decompression and structure limits, far below its defaults: a form is small
    with apply_configuration(**_PDF_LIMITS):
        return _read_pdf_limited(name, data, limits)


_MB = 1024 * 1024
_PDF_LIMITS = dict(
    maximum_declared_stream_length=16 * _MB, zlib_maximum_output_length=16 * _MB,
    lzw_maximum_output_length=16 * _MB, run_length_maximum_output_length=16 * _MB,
    jbig2_maximum_output_length=16 * _MB, array_based_stream_maximum_output_length=16 * _MB,
    stream_decoding_work_maximum_length=48 * _MB, page_tree_maximum_entries=10_000,
    page_tree_maximum_page_entries=50_000, form_fields_maximum_entries=5_000,
    xfa_decoding_work_maximum_length=16 * _MB, jbig2dec_binary=None,  # never run an outside program
)


def _read_pdf_limited(name: str, data: bytes, limits: DocumentLimits) -> Document:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data), strict=False)
    if reader.is_encrypted:
        try:
            if not reader.decrypt(""):
                return Document(name, "pdf", "encrypted")
        except Exception:
            return Document(name, "pdf", "encrypted")
    n = len(reader.pages)
    if n > limits.max_pages:
        return Document(name, "pdf", "too_large")
    lines: list[str] = []
    fields = 0
    boxes = False
    for f in (reader.get_fields() or {}).values():
        label = _field_label(f)
        value = f.get("/V")
        if not label or value is None:
            continue
        if f.get("/FT") == "/Btn":
            boxes = True
            on = str(value) not in ("/Off", "Off", "")
            lines.append(f"{CHECKED if on else UNCHECKED} {label}")
            fields += on
        else:
            text = str(value).strip()
            if text:
                lines.append(f"{label}: {text}")
                fields += 1
    field_text = "\n".join(lines)
    size = 0
    for page in reader.pages[: limits.text_pages]:
        t = page.extract_text() or ""
        lines.append(t)
        size += len(t)
        if size > limits.max_chars:
            break
    return Document(name, "pdf", "read", "\n".join(lines), fields, boxes, field_text)


# --- DOCX (python-docx) ------------------------------------------------------------------------

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_W14 = "{http://schemas.microsoft.com/office/word/2010/wordml}"


def _para_text(p) -> str:  # noqa: ANN001
    out: list[str] = []
    for el in p.iter():
        tag = el.tag
        if tag == _W + "t":
            out.append(el.text or "")
        elif tag == _W + "tab":
            out.append("\t")
        elif tag in (_W + "br", _W + "cr"):
            out.append("\n")
        elif tag == _W14 + "checked":
            out.append(CHECKED + " " if el.get(_W14 + "val") in ("1", "true") else UNCHECKED + " ")
        elif tag == _W + "checkBox":  # legacy form field check box
            checked = el.find(_W + "checked")
            default = el.find(_W + "default")
            on = (checked is not None and checked.get(_W + "val", "1") not in ("0", "false")) or (
                checked is None and default is not None and default.get(_W + "val") in ("1", "true"))
            out.append(CHECKED + " " if on else UNCHECKED + " ")
    return "".join(out)


def _sdt_value(sdt) -> str:  # noqa: ANN001
    """A content control's text; a placeholder still showing ("Vælg et element.") is empty."""
    pr = sdt.find(_W + "sdtPr")
    content = sdt.find(_W + "sdtContent")
    if content is None or (pr is not None and pr.find(_W + "showingPlcHdr") is not None):
        return ""
    return _para_text(content).strip()


def _sdt_label(sdt) -> str | None:  # noqa: ANN001
    pr = sdt.find(_W + "sdtPr")
    if pr is None:
        return None
    for key in ("alias", "tag"):
        el = pr.find(_W + key)
        if el is not None and el.get(_W + "val"):
            return el.get(_W + "val")
    return None


def _walk(el, out: list[str]) -> None:  # noqa: ANN001
    for child in el:
        tag = child.tag
        if tag == _W + "p":
            text = _para_text(child)
            for sdt in child.iter(_W + "sdt"):  # inline content controls: "alias: value" too
                pr = sdt.find(_W + "sdtPr")
                shown = sdt.find(_W + "sdtContent")
                if pr is not None and pr.find(_W + "showingPlcHdr") is not None and shown is not None:
                    text = text.replace(_para_text(shown), "")  # the placeholder is no value
                label = _sdt_label(sdt)
                if label:
                    out.append(f"{label}: {_sdt_value(sdt)}")
            out.append(text)
        elif tag == _W + "tbl":
            for tr in child.iter(_W + "tr"):
                cells = []
                for tc in tr.findall(_W + "tc"):
                    cells.append(" ".join(_para_text(p).strip() for p in tc.iter(_W + "p")).strip())
                out.append("\t".join(cells))
            out.append("")
        elif tag == _W + "sdt":
            label = _sdt_label(child)
            content = child.find(_W + "sdtContent")
            pr = child.find(_W + "sdtPr")
            if content is not None and (pr is None or pr.find(_W + "showingPlcHdr") is None):
                inner: list[str] = []
                _walk(content, inner)
                value = " ".join(s.strip() for s in inner if s.strip())
                out.append(f"{label}: {value}" if label else value)


def _read_docx(name: str, data: bytes, limits: DocumentLimits) -> Document:
    import docx

    with zipfile.ZipFile(io.BytesIO(data)) as z:
        if sum(i.file_size for i in z.infolist()) > limits.docx_unpacked or len(z.infolist()) > 2000:
            return Document(name, "docx", "too_large")
    d = docx.Document(io.BytesIO(data))
    out: list[str] = []
    _walk(d.element.body, out)
    fields = sum(1 for ln in out if re.match(r"^[^:\n]{1,60}: \S", ln))
    return Document(name, "docx", "read", "\n".join(out), fields)
