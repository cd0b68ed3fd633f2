"""Form referrals for the triage corpus: the details are in an attached PDF or DOCX form.

`build()` makes 24 messages at test time (deterministic: fixed dates, message ids, MIME
boundaries, zip timestamps and PDF file identifiers; no randomness). The body of most messages
only says "Hermed henvisning, se vedhæftede skema."; the referral items are in the form.

Forms used: PSYK 141 (the psychology referral form: "Borgers navn", "CPR-nr.",
"Henvisningsårsag / problemstilling", "Ønsket undersøgelse") and municipal forms
"Henvisning til Socialmedicinsk Enhed" (Navn, Cpr.nr., Telefon, Ønsket undersøgelse as text or
check boxes, Problemstilling / spørgsmål, Vedlagte akter), plus an LÆ 271 (Klinisk Funktion) and
the "åbenbar sag" skema as portal cases.

PDFs are written by the small writer below (PDF 1.4, Helvetica with WinAnsiEncoding, text with
BT/Tf/Td/Tj/ET, optional AcroForm with text fields and check boxes); DOCX files with python-docx
plus raw OXML for content controls. Run `python forms.py DIR` to write the .eml files (and an
expected.toml for reading) into DIR.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import struct
import sys
import zipfile
import zlib
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP

# ---------------------------------------------------------------------------------------------
# A tiny PDF writer
# ---------------------------------------------------------------------------------------------

PAGE_W, PAGE_H = 595, 842
LEFT = 56
TOP = 790
LINE = 14
WRAP = 92  # characters per line at 10 pt Helvetica (about)


def _content_str(text: str) -> bytes:
    """A PDF literal string for a content stream: WinAnsi (cp1252) bytes, non-ASCII as octal."""
    out = bytearray(b"(")
    for b in text.encode("cp1252", errors="replace"):
        if b in (0x28, 0x29, 0x5C):
            out += b"\\" + bytes([b])
        elif b < 0x20 or b > 0x7E:
            out += b"\\%03o" % b
        else:
            out.append(b)
    out += b")"
    return bytes(out)


def _text_string(text: str) -> bytes:
    """A PDF text string (field names, values, info): ASCII literal, else UTF-16BE with BOM."""
    if all(0x20 <= ord(c) < 0x7F for c in text):
        return _content_str(text)
    return b"<FEFF" + text.encode("utf-16-be").hex().upper().encode() + b">"


def _wrap(text: str, width: int = WRAP) -> list[str]:
    lines: list[str] = []
    for para in text.split("\n"):
        words = para.split(" ")
        cur = ""
        for w in words:
            if cur and len(cur) + 1 + len(w) > width:
                lines.append(cur)
                cur = w
            else:
                cur = f"{cur} {w}" if cur else w
        lines.append(cur)
    return lines


class _Pdf:
    def __init__(self) -> None:
        self.objs: list[bytes | None] = []

    def reserve(self) -> int:
        self.objs.append(None)
        return len(self.objs)

    def put(self, num: int, body: bytes) -> None:
        self.objs[num - 1] = body

    def add(self, body: bytes) -> int:
        num = self.reserve()
        self.put(num, body)
        return num

    def add_stream(self, data: bytes, extra: bytes = b"", compress: bool = False) -> int:
        if compress:
            data = zlib.compress(data, 9)
            extra += b" /Filter /FlateDecode"
        return self.add(b"<< /Length %d%s >>\nstream\n" % (len(data), extra) + data + b"\nendstream")

    def build(self, root: int, info: int | None, file_id: bytes) -> bytes:
        out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        offsets = []
        for i, body in enumerate(self.objs, 1):
            assert body is not None, f"object {i} never written"
            offsets.append(len(out))
            out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
        xref = len(out)
        out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(self.objs) + 1)
        out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
        fid = file_id.hex().upper().encode()
        out += b"trailer\n<< /Size %d /Root %d 0 R" % (len(self.objs) + 1, root)
        if info:
            out += b" /Info %d 0 R" % info
        out += b" /ID [<%s> <%s>] >>\nstartxref\n%d\n%%%%EOF\n" % (fid, fid, xref)
        return bytes(out)


@dataclass
class _Field:
    kind: str  # "text" | "check"
    name: str
    value: str | bool | None
    rect: tuple[float, float, float, float]
    tooltip: str | None = None
    multiline: bool = False


@dataclass
class _Page:
    texts: list[tuple[float, float, int, str, bool]] = field(default_factory=list)
    draw: list[bytes] = field(default_factory=list)
    fields: list[_Field] = field(default_factory=list)
    image: tuple[int, int, bytes] | None = None  # (width, height, 8-bit gray samples)


class _Layout:
    """Lays out a form top-down over as many pages as needed."""

    def __init__(self) -> None:
        self.pages: list[_Page] = [_Page()]
        self.y = TOP

    @property
    def page(self) -> _Page:
        return self.pages[-1]

    def _need(self, height: float) -> None:
        if self.y - height < 60:
            self.pages.append(_Page())
            self.y = TOP

    def new_page(self) -> None:
        self.pages.append(_Page())
        self.y = TOP

    def title(self, text: str, size: int = 14) -> None:
        self._need(size + 8)
        self.page.texts.append((LEFT, self.y, size, text, True))
        self.y -= size + 8

    def text(self, text: str, *, bold: bool = False, indent: float = 0, size: int = 10) -> None:
        for ln in _wrap(text, WRAP - int(indent / 5)):
            self._need(LINE)
            self.page.texts.append((LEFT + indent, self.y, size, ln, bold))
            self.y -= LINE

    def gap(self, h: float = 6) -> None:
        self.y -= h

    def rule(self) -> None:
        self._need(8)
        self.page.draw.append(b"0.6 w %d %.1f m %d %.1f l S" % (LEFT, self.y + 8, PAGE_W - LEFT, self.y + 8))
        self.y -= 6

    def label_value(self, label: str, value: str) -> None:
        """Label in bold at the left, the value in the same line and below (table look)."""
        lines = _wrap(value, 64) if value else [""]
        self._need(LINE * len(lines))
        self.page.texts.append((LEFT, self.y, 10, label, True))
        for ln in lines:
            if ln:
                self.page.texts.append((LEFT + 170, self.y, 10, ln, False))
            self.y -= LINE

    def text_field(self, label: str, name: str, value: str | None, *, tooltip: str | None = None,
                   lines: int = 1) -> None:
        h = 16 if lines == 1 else 13 * lines + 4
        self._need(h + 6)
        top = self.y + 11
        self.page.texts.append((LEFT, self.y, 10, label, True))
        rect = (LEFT + 170, top - h, PAGE_W - LEFT, top)
        self.page.draw.append(b"0.5 w %.1f %.1f %.1f %.1f re S" % (rect[0], rect[1], rect[2] - rect[0], h))
        self.page.fields.append(_Field("text", name, value, rect, tooltip, lines > 1))
        self.y -= h + 6

    def check_field(self, label: str, name: str, on: bool, *, tooltip: str | None = None) -> None:
        self._need(LINE + 2)
        rect = (LEFT + 10, self.y - 2, LEFT + 21, self.y + 9)
        self.page.draw.append(b"0.5 w %.1f %.1f 11 11 re S" % (rect[0], rect[1]))
        self.page.fields.append(_Field("check", name, on, rect, tooltip))
        self.page.texts.append((LEFT + 28, self.y, 10, label, False))
        self.y -= LINE + 2


def _appearance_text(value: str, w: float, h: float, multiline: bool) -> bytes:
    ops = [b"/Tx BMC q BT /Helv 10 Tf 0 g"]
    if multiline:
        lines = _wrap(value, int(w / 5.1))
        ops.append(b"2 %.1f Td 12 TL" % (h - 12))
        for ln in lines:
            ops.append(_content_str(ln) + b" Tj T*")
    else:
        ops.append(b"2 4 Td " + _content_str(value) + b" Tj")
    ops.append(b"ET Q EMC")
    return b"\n".join(ops)


def pdf_document(pages: list[_Page], *, title: str, producer: str = "Microsoft\xae Word for Microsoft 365",
                 doc_id: str, compress: bool = False, text_fonts: bool = True) -> bytes:
    """Write `pages` (text, drawings, form fields, an optional image) as one PDF 1.4 file."""
    pdf = _Pdf()
    catalog = pdf.reserve()
    pages_obj = pdf.reserve()
    helv = pdf.add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    bold = pdf.add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>")
    any_fields = any(p.fields for p in pages)
    zadb = pdf.add(b"<< /Type /Font /Subtype /Type1 /BaseFont /ZapfDingbats >>") if any_fields else 0
    check_off = check_on = 0
    if any_fields:
        res = b"/Resources << /Font << /ZaDb %d 0 R >> >>" % zadb
        check_on = pdf.add_stream(b"q 0 g BT /ZaDb 9 Tf 1.6 2.2 Td (4) Tj ET Q",
                                  b" /Type /XObject /Subtype /Form /BBox [0 0 11 11] " + res)
        check_off = pdf.add_stream(b"", b" /Type /XObject /Subtype /Form /BBox [0 0 11 11]")
    kids: list[int] = []
    all_fields: list[int] = []
    for page in pages:
        page_num = pdf.reserve()
        kids.append(page_num)
        ops: list[bytes] = []
        if page.image is not None:
            ops.append(b"q %d 0 0 %d 0 0 cm /Im1 Do Q" % (PAGE_W, PAGE_H))
        ops.extend(page.draw)
        for x, y, size, text, is_bold in page.texts:
            ops.append(b"BT /%s %d Tf %.1f %.1f Td %s Tj ET"
                       % (b"F2" if is_bold else b"F1", size, x, y, _content_str(text)))
        content = pdf.add_stream(b"\n".join(ops) + b"\n", compress=compress)
        resources = b"/Font << /F1 %d 0 R /F2 %d 0 R >>" % (helv, bold) if text_fonts and page.texts else b""
        if page.image is not None:
            w, h, samples = page.image
            im = pdf.add_stream(samples, b" /Type /XObject /Subtype /Image /Width %d /Height %d"
                                b" /ColorSpace /DeviceGray /BitsPerComponent 8" % (w, h), compress=True)
            resources += b" /XObject << /Im1 %d 0 R >>" % im
        annots: list[int] = []
        for f in page.fields:
            x0, y0, x1, y1 = f.rect
            base = (b"<< /Type /Annot /Subtype /Widget /F 4 /P %d 0 R /Rect [%.1f %.1f %.1f %.1f] /T %s"
                    % (page_num, x0, y0, x1, y1, _text_string(f.name)))
            if f.tooltip:
                base += b" /TU " + _text_string(f.tooltip)
            if f.kind == "text":
                value = f.value if isinstance(f.value, str) else ""
                ap = pdf.add_stream(_appearance_text(value, x1 - x0, y1 - y0, f.multiline),
                                    b" /Type /XObject /Subtype /Form /BBox [0 0 %.1f %.1f]"
                                    b" /Resources << /Font << /Helv %d 0 R >> >>" % (x1 - x0, y1 - y0, helv))
                body = base + b" /FT /Tx /DA (/Helv 10 Tf 0 g)"
                if f.multiline:
                    body += b" /Ff 4096"
                if f.value is not None:
                    body += b" /V " + _text_string(value)
                body += b" /AP << /N %d 0 R >> >>" % ap
            else:
                state = b"/Yes" if f.value else b"/Off"
                body = base + (b" /FT /Btn /V %s /AS %s /DA (/ZaDb 0 Tf 0 g) /MK << /CA (4) >>"
                               b" /AP << /N << /Yes %d 0 R /Off %d 0 R >> >> >>"
                               % (state, state, check_on, check_off))
            num = pdf.add(body)
            annots.append(num)
            all_fields.append(num)
        annot_part = b" /Annots [%s]" % b" ".join(b"%d 0 R" % a for a in annots) if annots else b""
        pdf.put(page_num, b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %d %d] /Resources << %s >>"
                b" /Contents %d 0 R%s >>" % (pages_obj, PAGE_W, PAGE_H, resources, content, annot_part))
    pdf.put(pages_obj, b"<< /Type /Pages /Kids [%s] /Count %d >>"
            % (b" ".join(b"%d 0 R" % k for k in kids), len(kids)))
    acro = b""
    if all_fields:
        acro = (b" /AcroForm << /Fields [%s] /NeedAppearances true /DA (/Helv 0 Tf 0 g)"
                b" /DR << /Font << /Helv %d 0 R /ZaDb %d 0 R >> >> >>"
                % (b" ".join(b"%d 0 R" % f for f in all_fields), helv, zadb))
    pdf.put(catalog, b"<< /Type /Catalog /Pages %d 0 R%s >>" % (pages_obj, acro))
    info = pdf.add(b"<< /Title %s /Producer %s /CreationDate (D:20261116080000+01'00') >>"
                   % (_text_string(title), _text_string(producer)))
    return pdf.build(catalog, info, hashlib.md5(doc_id.encode()).digest())


def text_pdf(title: str, lines: list[str], *, doc_id: str) -> bytes:
    """A small case file (sociale akter, lægeerklæring, journalnotat) with real page text."""
    lay = _Layout()
    lay.title(title)
    for ln in lines:
        if ln == "":
            lay.gap()
        else:
            lay.text(ln)
    return pdf_document(lay.pages, title=title, doc_id=doc_id)


def _scanned_pdf(doc_id: str) -> bytes:
    """One page that is only a gray image of a form (no text operators, no fonts) plus a frame."""
    w, h = 124, 176
    rows = bytearray()
    for y in range(h):
        line_no, in_line = divmod(y, 8)
        for x in range(w):
            v = 250
            if 10 <= y <= 15 and 10 <= x <= 80:  # a heading bar
                v = 40
            elif y > 24 and in_line in (3, 4, 5) and 10 <= x <= 114:
                seed = hashlib.md5(b"%d:%d" % (line_no, x // 3)).digest()[0]
                end = 40 + (hashlib.md5(b"end%d" % line_no).digest()[0] % 70)
                v = 70 if (seed % 5 and x < end) else 245
            rows.append(v)
    page = _Page(image=(w, h, bytes(rows)))
    page.draw.append(b"0.3 w 20 20 555 802 re S")
    return pdf_document([page], title="", producer="Canon iR-ADV C5535 PDF", doc_id=doc_id)


def _encrypt(data: bytes, user_password: str, owner_password: str, doc_id: str) -> bytes:
    """Encrypt with pypdf (RC4-128, fixed file identifier, so the bytes are reproducible)."""
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import ArrayObject, ByteStringObject

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    fid = ByteStringObject(hashlib.md5(doc_id.encode()).digest())
    writer._ID = ArrayObject((fid, fid))
    writer.generate_file_identifiers = lambda: None  # type: ignore[method-assign]
    writer.encrypt(user_password=user_password, owner_password=owner_password, algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


# ---------------------------------------------------------------------------------------------
# DOCX helpers
# ---------------------------------------------------------------------------------------------

W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
ZIP_TIME = (2026, 11, 16, 8, 0, 0)
_sdt_ids = iter(range(610_000_001, 10**10))


def _new_docx(author: str):
    import docx

    d = docx.Document()
    cp = d.core_properties
    cp.author = author
    cp.last_modified_by = author
    cp.created = _dt.datetime(2026, 11, 13, 10, 0, 0)
    cp.modified = _dt.datetime(2026, 11, 16, 8, 0, 0)
    cp.revision = 2
    return d


def _docx_bytes(d) -> bytes:
    """Save, then rewrite the zip with fixed timestamps (python-docx stamps the current time)."""
    raw = io.BytesIO()
    d.save(raw)
    zin = zipfile.ZipFile(io.BytesIO(raw.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zi = zipfile.ZipInfo(info.filename, date_time=ZIP_TIME)
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o644 << 16
            zout.writestr(zi, zin.read(info.filename))
    return out.getvalue()


def _xml_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _sdt_run_xml(alias: str, tag: str, value: str | None, *, placeholder: str = "Klik eller tryk her for at skrive tekst.",
                 dropdown: list[str] | None = None) -> str:
    """A run-level content control (w:sdt in a paragraph). value None: showing the placeholder."""
    pr = f'<w:alias w:val="{_xml_escape(alias)}"/><w:tag w:val="{tag}"/><w:id w:val="{next(_sdt_ids)}"/>'
    if value is None:
        pr += '<w:placeholder><w:docPart w:val="DefaultPlaceholder_-1854013440"/></w:placeholder><w:showingPlcHdr/>'
    if dropdown:
        items = "".join(f'<w:listItem w:displayText="{_xml_escape(i)}" w:value="{_xml_escape(i)}"/>' for i in dropdown)
        pr += f"<w:dropDownList>{items}</w:dropDownList>"
    if value is None:
        content = f'<w:r><w:rPr><w:color w:val="808080"/></w:rPr><w:t>{_xml_escape(placeholder)}</w:t></w:r>'
    else:
        content = f'<w:r><w:t xml:space="preserve">{_xml_escape(value)}</w:t></w:r>'
    return f'<w:sdt xmlns:w="{W_NS}"><w:sdtPr>{pr}</w:sdtPr><w:sdtContent>{content}</w:sdtContent></w:sdt>'


def _sdt_block_xml(alias: str, tag: str, paragraphs: list[str]) -> str:
    """A block-level content control around whole paragraphs (rich text control)."""
    pr = f'<w:alias w:val="{_xml_escape(alias)}"/><w:tag w:val="{tag}"/><w:id w:val="{next(_sdt_ids)}"/>'
    paras = "".join(f'<w:p><w:r><w:t xml:space="preserve">{_xml_escape(p)}</w:t></w:r></w:p>' for p in paragraphs)
    return f'<w:sdt xmlns:w="{W_NS}"><w:sdtPr>{pr}</w:sdtPr><w:sdtContent>{paras}</w:sdtContent></w:sdt>'


def _label_sdt_paragraph(d, label: str, alias: str, tag: str, value: str | None, **kw) -> None:
    from docx.oxml import parse_xml

    p = d.add_paragraph()
    p.add_run(f"{label}: ").bold = True
    p._p.append(parse_xml(_sdt_run_xml(alias, tag, value, **kw)))


def _cell_sdt(cell, alias: str, tag: str, value: str | None, **kw) -> None:
    from docx.oxml import parse_xml

    cell.paragraphs[0]._p.append(parse_xml(_sdt_run_xml(alias, tag, value, **kw)))


def _two_col_table(d, rows: list[tuple[str, str]]):
    t = d.add_table(rows=0, cols=2)
    t.style = "Table Grid"
    for label, value in rows:
        cells = t.add_row().cells
        cells[0].paragraphs[0].add_run(label).bold = True
        lines = value.split("\n")
        cells[1].paragraphs[0].add_run(lines[0])
        for more in lines[1:]:
            cells[1].add_paragraph(more)
    return t


def _raw_zip(entries: list[tuple[str, bytes | None, tuple[bytes, int, int] | None]]) -> bytes:
    """Write a zip by hand. Entry: (name, data to deflate, or None with (deflated, size, crc))."""
    out = bytearray()
    central = bytearray()
    dos_time = (ZIP_TIME[3] << 11) | (ZIP_TIME[4] << 5) | (ZIP_TIME[5] // 2)
    dos_date = ((ZIP_TIME[0] - 1980) << 9) | (ZIP_TIME[1] << 5) | ZIP_TIME[2]
    for name, data, pre in entries:
        if data is not None:
            c = zlib.compressobj(9, zlib.DEFLATED, -15)
            comp = c.compress(data) + c.flush()
            size, crc = len(data), zlib.crc32(data)
        else:
            assert pre is not None
            comp, size, crc = pre
        fn = name.encode()
        offset = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, dos_time, dos_date, crc, len(comp), size, len(fn), 0)
        out += fn + comp
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, dos_time, dos_date, crc,
                               len(comp), size, len(fn), 0, 0, 0, 0, 0o644 << 16, offset)
        central += fn
    cd_off = len(out)
    out += central
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(central), cd_off, 0)
    return bytes(out)


def _bomb_docx(template: bytes, mib: int = 128) -> bytes:
    """A DOCX whose word/document.xml inflates to `mib` MiB of blanks after an unclosed <w:body>."""
    zin = zipfile.ZipFile(io.BytesIO(template))
    head = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            b'<w:document xmlns:w="' + W_NS.encode() + b'"><w:body>')
    chunk = b" " * (1 << 20)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = c.compress(head) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)  # identical for every further chunk
    comp = first + block * mib + c.flush(zlib.Z_FINISH)
    crc = zlib.crc32(head)
    for _ in range(mib):
        crc = zlib.crc32(chunk, crc)
    size = len(head) + mib * len(chunk)
    entries: list[tuple[str, bytes | None, tuple[bytes, int, int] | None]] = []
    for info in zin.infolist():
        if info.filename == "word/document.xml":
            entries.append((info.filename, None, (comp, size, crc)))
        else:
            entries.append((info.filename, zin.read(info.filename), None))
    return _raw_zip(entries)


def _broken_docx(template: bytes) -> bytes:
    """The DOCX cut off a few bytes into word/document.xml's compressed data (no central directory)."""
    zin = zipfile.ZipFile(io.BytesIO(template))
    info = zin.getinfo("word/document.xml")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    return template[: start + 24]


# ---------------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------------

PDF_T = ("application", "pdf")
DOCX_T = ("application", "vnd.openxmlformats-officedocument.wordprocessingml.document")

EXAMS = [
    "Socialmedicinsk speciallægeerklæring",
    "Psykiatrisk speciallægeerklæring",
    "Psykologisk undersøgelse",
    "Støttende arbejdsmarkedsrettede psykologsamtaler (5 samtaler)",
]

DISCLAIMER = ("Denne e-mail kan indeholde fortrolige oplysninger. Er du ikke den rette modtager, "
              "bedes du slette mailen og give afsender besked.")

_LOGO = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e1d7b4"
    "5c0000000049454e44ae426082")


def _mail(*, sender: tuple[str, str], subject: str, date: str, msgid: str, body: str,
          attachments: list[tuple[str, bytes, tuple[str, str]]], html: str | None = None,
          logo: bool = False, cte: str | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"{sender[0]} <{sender[1]}>"
    msg["To"] = "socialmedicin@rn.dk"
    msg["Subject"] = subject
    msg["Date"] = date
    msg["Message-ID"] = f"<{msgid}@{sender[1].split('@')[1]}>"
    if cte:
        msg.set_content(body, cte=cte)
    else:
        msg.set_content(body)
    if html is not None:
        msg.add_alternative(html, subtype="html")
        if logo:
            msg.get_payload()[1].add_related(_LOGO, "image", "png", cid=f"<logo.{msgid}@{sender[1].split('@')[1]}>",
                                             filename="image001.png")
    for filename, data, (maintype, subtype) in attachments:
        msg.add_attachment(data, maintype, subtype, filename=filename)
    for i, part in enumerate(msg.walk()):
        if part.is_multipart():
            part.set_boundary(f"----=_NextPart_{msgid}_{i:02d}")
    return msg.as_bytes(policy=SMTP)


def _exp(decision: str, *, reason: str = "", missing: list[str] | None = None,
         examinations: list[str] | None = None, name: str | None = None, basis: str) -> dict:
    e = {"class": "form", "decision": decision, "reason": reason, "missing": missing or [],
         "examinations": examinations or []}
    if name is not None:
        e["name"] = name
    e["basis"] = basis
    return e


def _sig(name: str, title: str, place: str, phone: str, *, disclaimer: bool = False) -> str:
    s = f"\n\nMed venlig hilsen\n\n{name}\n{title}\n{place}\nTlf. {phone}\n"
    if disclaimer:
        s += f"\n{DISCLAIMER}\n"
    return s


def _akter(title: str, name: str, lines: list[str], doc_id: str) -> bytes:
    return text_pdf(title, [f"Vedr.: {name}", ""] + lines, doc_id=doc_id)


def _psyk141_layout(lay: _Layout, d: dict) -> None:
    """PSYK 141 as page text (label: value lines)."""
    lay.title("PSYK 141 - Henvisning til psykologisk undersøgelse")
    lay.text("Henvisning fra kommune til psykologisk undersøgelse/udtalelse")
    lay.rule()
    lay.text("1. Henvisende myndighed", bold=True)
    lay.label_value("Kommune / afdeling:", d["afsender"])
    lay.label_value("Sagsbehandler:", d["sagsbehandler"])
    lay.gap()
    lay.text("2. Borger", bold=True)
    lay.label_value("Borgers navn:", d["navn"])
    lay.label_value("CPR-nr.:", d["cpr"])
    lay.label_value("Adresse:", d["adresse"])
    lay.label_value("Telefon:", d["tlf"])
    lay.gap()
    lay.text("3. Ønsket undersøgelse", bold=True)
    lay.text(d["undersoegelse"])
    lay.gap()
    lay.text("4. Henvisningsårsag / problemstilling", bold=True)
    lay.text(d["problem"])
    lay.gap()
    lay.text("5. Tidligere undersøgelser og behandling", bold=True)
    lay.text(d["tidligere"])
    lay.gap()
    lay.text("6. Vedlagte bilag", bold=True)
    lay.text(d["bilag"])
    lay.gap()
    lay.label_value("Samtykke foreligger:", "Ja, underskrevet samtykkeerklæring er vedlagt")
    lay.label_value("Dato:", d["dato"])


def _municipal_text_layout(lay: _Layout, d: dict, *, boxes: bool = False) -> None:
    """'Henvisning til Socialmedicinsk Enhed' as page text."""
    lay.title(f"{d['kommune']} - Henvisning til Socialmedicinsk Enhed")
    lay.text("Sendes via sikker mail til socialmedicin@rn.dk")
    lay.rule()
    lay.label_value("Navn:", d["navn"])
    lay.label_value("Cpr.nr.:", d["cpr"])
    lay.label_value("Telefon:", d["tlf"])
    if "forsoergelse" in d:
        lay.label_value("Forsørgelsesgrundlag:", d["forsoergelse"])
    lay.gap()
    lay.text("Ønsket undersøgelse" + (" (sæt kryds):" if boxes else ":"), bold=True)
    if boxes:
        for ex in EXAMS:
            lay.text(("[X]  " if ex in d["undersoegelse"] else "[   ]  ") + ex, indent=10)
    else:
        lay.text(d["undersoegelse"])
    lay.gap()
    lay.text("Problemstilling / spørgsmål:", bold=True)
    lay.text(d["problem"])
    lay.gap()
    lay.text("Vedlagte akter:", bold=True)
    lay.text(d["akter"])
    lay.gap()
    lay.label_value("Henvisende sagsbehandler:", d["sagsbehandler"])
    lay.label_value("Dato:", d["dato"])


# --- f01 -------------------------------------------------------------------------------------

def _f01():
    d = {
        "afsender": "Jobcenter Aalborg, Uddannelseshjælp",
        "sagsbehandler": "Louise Bech Kragh, tlf. 99 31 52 40",
        "navn": "Camilla Høj Andersen",
        "cpr": "230797-2614",
        "adresse": "Sønderbro 14, 2. th., 9000 Aalborg",
        "tlf": "28 41 63 05",
        "undersoegelse": "Psykologisk undersøgelse med henblik på vurdering af uddannelsesevne og arbejdsevne.",
        "problem": ("Camilla har gennem flere år haft meget svingende fremmøde i uddannelse og praktik. Hun "
                    "beskriver angst i sociale sammenhænge, koncentrationsbesvær og perioder med nedtrykthed. "
                    "Det ønskes belyst, om der foreligger en angstlidelse eller anden psykisk lidelse, og "
                    "hvordan hendes kognitive ressourcer og personlighedsmæssige forhold påvirker muligheden "
                    "for at gennemføre en erhvervsuddannelse."),
        "tidligere": "Samtaler hos egen læge i 2024. Ikke tidligere psykologisk testet.",
        "bilag": "Sociale akter, journalnotat fra egen læge.",
        "dato": "16.11.2026",
    }
    lay = _Layout()
    _psyk141_layout(lay, d)
    form = pdf_document(lay.pages, title="PSYK 141", doc_id="f01-form")
    akter = _akter("Sociale akter", d["navn"], [
        "Sagsresumé: Camilla er 29 år og modtager uddannelseshjælp. Hun har afbrudt to erhvervsuddannelser.",
        "Praktik i butik i foråret 2026 blev afbrudt efter tre uger på grund af højt fravær.",
        "Hun bor alene og har god kontakt til sin mor. Ingen misbrug oplyst.",
    ], "f01-akter")
    raw = _mail(
        sender=("Louise Bech Kragh", "lbk-jobcenter@aalborg.dk"),
        subject="Henvisning - psykologisk undersøgelse",
        date="Mon, 16 Nov 2026 09:12:44 +0100", msgid="f01.20261116091244.lbk",
        body=("Hej\n\nHermed henvisning, se vedhæftede skema (PSYK 141).\n"
              "Sociale akter er vedhæftet som særskilt fil."
              + _sig("Louise Bech Kragh", "Socialrådgiver", "Jobcenter Aalborg", "99 31 52 40")),
        attachments=[("PSYK 141 - Camilla Høj Andersen.pdf", form, PDF_T), ("Sociale akter.pdf", akter, PDF_T)],
    )
    return "f01-psyk141-pdf-tekst.eml", raw, _exp(
        "accepted", examinations=["psykologisk_undersoegelse"], name=d["navn"],
        basis=("seed 004 e-mail route ('Ved henvisning til psykologundersøgelse kan PSYK 141 også anvendes'): "
               "name, CPR, examination and problem in the PSYK 141 page text; form + sociale akter attached"))


# --- f02 -------------------------------------------------------------------------------------

def _municipal_field_form(d: dict, *, names: dict[str, str] | None = None, tooltips: bool = False,
                          boxes: bool = False, kommune: str = "") -> list[_Page]:
    """'Henvisning til Socialmedicinsk Enhed' as an AcroForm: page text holds only the labels."""
    n = names or {}
    lay = _Layout()
    lay.title(f"{kommune} - Henvisning til Socialmedicinsk Enhed")
    lay.text("Udfyldes af sagsbehandler og sendes via sikker mail til socialmedicin@rn.dk")
    lay.rule()
    lay.text("Borger", bold=True)
    lay.gap(4)
    for label, key in (("Navn", "navn"), ("Cpr.nr.", "cpr"), ("Telefon", "tlf"), ("Adresse", "adresse")):
        lay.text_field(label, n.get(key, label), d.get(key), tooltip=label if tooltips else None)
    lay.gap()
    if boxes:
        lay.text("Ønsket undersøgelse (sæt kryds)", bold=True)
        for i, ex in enumerate(EXAMS):
            lay.check_field(ex, n.get(f"ex{i}", f"Undersøgelse {i + 1}"), ex in d["undersoegelse"],
                            tooltip=ex if tooltips else None)
    else:
        lay.text_field("Ønsket undersøgelse", n.get("undersoegelse", "Ønsket undersøgelse"), d["undersoegelse"],
                       tooltip="Ønsket undersøgelse" if tooltips else None)
    lay.gap()
    lay.text_field("Problemstilling / spørgsmål", n.get("problem", "Problemstilling / spørgsmål"),
                   d.get("problem"), tooltip="Problemstilling / spørgsmål" if tooltips else None, lines=9)
    lay.text_field("Vedlagte akter", n.get("akter", "Vedlagte akter"), d["akter"],
                   tooltip="Vedlagte akter" if tooltips else None, lines=3)
    lay.gap()
    lay.text("Henvisende sagsbehandler", bold=True)
    lay.gap(4)
    lay.text_field("Navn og telefon", n.get("sagsbehandler", "Sagsbehandler"), d["sagsbehandler"],
                   tooltip="Sagsbehandler" if tooltips else None)
    lay.text_field("Dato", n.get("dato", "Dato"), d["dato"], tooltip="Dato" if tooltips else None)
    return lay.pages


def _f02():
    d = {
        "navn": "Rasmus Skovgaard Thomsen", "cpr": "041181-1457", "tlf": "42 17 90 33",
        "adresse": "Bakkevej 7, 9800 Hjørring",
        "undersoegelse": "Psykiatrisk speciallægeerklæring",
        "problem": ("Rasmus har i mange år haft et stort alkoholforbrug og har to gange været i ambulant "
                    "alkoholbehandling. Han beskriver vedvarende nedtrykthed, søvnproblemer og social isolation. "
                    "Vi ønsker svar på: 1) Foreligger der en psykiatrisk lidelse ud over alkoholafhængighed? "
                    "2) Hvilken behandling er relevant, og hvad er prognosen? 3) Hvilke skånehensyn skal der "
                    "tages i forhold til arbejde?"),
        "akter": "Sociale akter, LÆ 265 fra egen læge, udskrift fra Alkoholbehandlingen Hjørring",
        "sagsbehandler": "Jesper Nørgaard, tlf. 72 33 61 18", "dato": "17-11-2026",
    }
    form = pdf_document(_municipal_field_form(d, kommune="Hjørring Kommune"),
                        title="Henvisning til Socialmedicinsk Enhed", doc_id="f02-form")
    raw = _mail(
        sender=("Jesper Nørgaard", "jesper.noergaard@hjoerring.dk"),
        subject="Henvisning til SME", date="Tue, 17 Nov 2026 10:03:19 +0100", msgid="f02.20261117100319.jn",
        body=("Til Socialmedicinsk Enhed\n\nHermed henvisning, se vedhæftede skema.\nAkter er vedlagt."
              + _sig("Jesper Nørgaard", "Sagsbehandler, Jobcenter Hjørring", "Springvandspladsen 5, 9800 Hjørring",
                     "72 33 61 18", disclaimer=True)),
        attachments=[("Henvisningsskema SME.pdf", form, PDF_T),
                     ("LÆ 265.pdf", text_pdf("Lægeerklæring LÆ 265", [
                         "Statusattest fra egen læge.", "Diagnoser: Alkoholafhængighed. Depressive symptomer.",
                         "Behandling: Antabus i perioder. Henvist til alkoholbehandling."], doc_id="f02-lae"), PDF_T),
                     ("Sociale akter.pdf", _akter("Sociale akter", d["navn"], [
                         "Ledig siden 2023, kontanthjælp. Tidligere ansat som chauffør i 12 år.",
                         "Har mistet kørekortet i 2023."], "f02-akter"), PDF_T)],
    )
    return "f02-henvisning-pdf-felter.eml", raw, _exp(
        "accepted", examinations=["psykiatrisk_erklaering"], name=d["navn"],
        basis=("seed 004 e-mail route: all items are in filled AcroForm text fields (/FT /Tx, /V); the page "
               "text has only the labels; form + LÆ 265 + sociale akter attached"))


# --- f03 -------------------------------------------------------------------------------------

def _f03():
    d = {
        "navn": "Birthe Kirstine Mølgaard", "cpr": "120568-0846", "tlf": "61 30 72 94",
        "adresse": "Vestergade 41, 7700 Thisted",
        "undersoegelse": ["Socialmedicinsk speciallægeerklæring"],
        "problem": ("Borgeren har i flere år haft udbredte smerter i ryg, skuldre og hofter (fibromyalgi) og "
                    "oplyser at kunne arbejde højst 2 timer ad gangen. Forsørgelse: sygedagpenge, visiteret til "
                    "kategori 2. Hvilke helbredsmæssige begrænsninger og ressourcer har borgeren i forhold til "
                    "arbejdsmarkedet? Er de relevante behandlingsmuligheder afprøvet?"),
        "akter": "Sociale akter, statusattest fra egen læge, notat fra Smerteklinikken",
        "sagsbehandler": "Pia Kristensen, tlf. 99 17 24 60", "dato": "17.11.2026",
    }
    names = {"navn": "borger_navn", "cpr": "borger_cpr", "tlf": "borger_tlf", "adresse": "borger_adresse",
             "ex0": "us_socialmedicinsk", "ex1": "us_psykiatrisk", "ex2": "us_psykolog", "ex3": "us_stoettesamtaler",
             "problem": "problemstilling", "akter": "vedlagte_akter", "sagsbehandler": "sagsbehandler", "dato": "dato"}
    form = pdf_document(_municipal_field_form(d, names=names, boxes=True, kommune="Thisted Kommune"),
                        title="Henvisning til Socialmedicinsk Enhed", doc_id="f03-form")
    raw = _mail(
        sender=("Pia Kristensen", "pkr@thisted.dk"), subject="Henvisning",
        date="Tue, 17 Nov 2026 13:41:07 +0100", msgid="f03.20261117134107.pkr",
        body=("Hej\n\nHermed henvisning, se vedhæftede skema. Statusattest og akter ligger i samme mail."
              + _sig("Pia Kristensen", "Sagsbehandler, Sygedagpengeteamet", "Jobcenter Thisted", "99 17 24 60")),
        attachments=[("Henvisning SME - udfyldt.pdf", form, PDF_T),
                     ("Statusattest.pdf", text_pdf("Statusattest", [
                         "Udbredte smerter gennem flere år. Fibromyalgi diagnosticeret 2022.",
                         "Behandling: fysioterapi, smertestillende. Henvist til Smerteklinikken."], doc_id="f03-sa"), PDF_T)],
    )
    return "f03-henvisning-pdf-afkrydsning.eml", raw, _exp(
        "accepted", examinations=["socialmedicinsk_erklaering"], name=d["navn"],
        basis=("seed 004 e-mail route: name/CPR/problem in AcroForm text fields, examination as a check box "
               "(/FT /Btn, /V /Yes) - the page text lists all four examinations as labels; seed 000: "
               "sygedagpenge is a løbende sag only when visiteret til kategori 3 (here kategori 2)"))


# --- f04 -------------------------------------------------------------------------------------

def _f04():
    d = {
        "navn": "Hamid Reza Mohammadi", "cpr": "290386-3305", "tlf": "31 56 08 72",
        "adresse": "Hobrovej 112, 1. tv., 9500 Hobro",
        "undersoegelse": ["Psykiatrisk speciallægeerklæring", "Psykologisk undersøgelse"],
        "problem": ("Hamid kom til Danmark i 2015. Han har mareridt, søvnbesvær, irritabilitet og svært ved at "
                    "huske beskeder. Det ønskes belyst, om han lider af PTSD eller anden psykisk lidelse, hvordan "
                    "symptomerne påvirker arbejdsevnen, og hvilken behandling der kan anbefales. Der ønskes "
                    "desuden psykologisk testning af de kognitive vanskeligheder."),
        "akter": "Sociale akter, journal fra egen læge, udtalelse fra sprogskolen",
        "sagsbehandler": "Tina Juul Mikkelsen, tlf. 97 11 34 52", "dato": "18/11-2026",
    }
    names = {"navn": "Tekst1", "cpr": "Tekst2", "tlf": "Tekst3", "adresse": "Tekst4",
             "ex0": "Afkrydsningsfelt1", "ex1": "Afkrydsningsfelt2", "ex2": "Afkrydsningsfelt3",
             "ex3": "Afkrydsningsfelt4", "problem": "Tekst5", "akter": "Tekst6", "sagsbehandler": "Tekst7",
             "dato": "Tekst8"}
    form = pdf_document(_municipal_field_form(d, names=names, tooltips=True, boxes=True,
                                              kommune="Mariagerfjord Kommune"),
                        title="Henvisningsskema", producer="Adobe Acrobat Pro (64-bit) 25.1", doc_id="f04-form")
    raw = _mail(
        sender=("Tina Juul Mikkelsen", "tjm@mariagerfjord.dk"), subject="Ny henvisning til SME",
        date="Wed, 18 Nov 2026 08:27:51 +0100", msgid="f04.20261118082751.tjm",
        body=("Kære Socialmedicinsk Enhed\n\nHermed henvisning, se vedhæftede skema.\n"
              "Borger taler dansk, men tolk (dari) kan være en fordel ved undersøgelsen."
              + _sig("Tina Juul Mikkelsen", "Socialrådgiver", "Jobcenter Mariagerfjord", "97 11 34 52", disclaimer=True)),
        attachments=[("Henvisningsskema.pdf", form, PDF_T),
                     ("Journal egen læge.pdf", text_pdf("Journaludskrift", [
                         "Kontakt 2026-08-12: Mareridt, uro, hukommelsesbesvær. Henvises til psykiater.",
                         "Kontakt 2026-10-03: Uændret. Ønsker ikke medicin p.t."], doc_id="f04-jr"), PDF_T)],
    )
    return "f04-henvisning-pdf-feltnavne-tekst1.eml", raw, _exp(
        "accepted", examinations=["psykiatrisk_erklaering", "psykologisk_undersoegelse"], name=d["navn"],
        basis=("seed 004 e-mail route: an Acrobat form with generic field names (Tekst1.., Afkrydsningsfelt1..); "
               "each field's /TU (tooltip) carries the label; two examinations ticked (/V /Yes)"))


# --- f05 -------------------------------------------------------------------------------------

def _f05():
    d = {
        "kommune": "Frederikshavn Kommune",
        "navn": "Signe Vinther Dahl", "cpr": "081192-2470", "tlf": "22 65 19 40",
        "undersoegelse": ["Støttende arbejdsmarkedsrettede psykologsamtaler (5 samtaler)"],
        "problem": ("Signe er sygemeldt fra sit job som pædagog med stress og belastningsreaktion efter en lang "
                    "periode med stort arbejdspres. Hun er motiveret for at vende tilbage. Samtalerne ønskes "
                    "rettet mod at fastholde tilknytningen til arbejdspladsen: hvordan kan hun håndtere "
                    "belastninger og trappe gradvist op i timer?"),
        "akter": "Sociale akter, statusattest fra egen læge.",
        "sagsbehandler": "Ole Sand, tlf. 98 45 62 31", "dato": "18.11.2026",
    }
    lay = _Layout()
    _municipal_text_layout(lay, d, boxes=True)
    form = pdf_document(lay.pages, title="Henvisning til SME", doc_id="f05-form", compress=True)
    raw = _mail(
        sender=("Ole Sand", "ole.sand@frederikshavn.dk"), subject="henvisning samtaleforløb",
        date="Wed, 18 Nov 2026 15:58:02 +0100", msgid="f05.20261118155802.os",
        body="Hej\nHermed henvisning se vedhæftede skema\n\nMvh Ole\n\nSendt fra min iPhone\n",
        attachments=[("Henvisning SME Signe.pdf", form, PDF_T),
                     ("Statusattest.pdf", text_pdf("Statusattest", [
                         "Sygemeldt siden august 2026. Stress og belastningsreaktion.",
                         "Forventes at kunne genoptage arbejdet gradvist."], doc_id="f05-sa"), PDF_T)],
    )
    return "f05-henvisning-pdf-flad-afkrydsning.eml", raw, _exp(
        "accepted", examinations=["stoettende_samtaler"], name=d["navn"],
        basis=("seed 004 e-mail route and the four examinations: a flattened form (compressed content stream) "
               "where the ticked box shows as '[X]' in the page text, the others as '[   ]'"))


# --- f06 -------------------------------------------------------------------------------------

def _f06():
    d = {
        "navn": "Kasper Ulrik Brandt", "cpr": "170979-1093", "tlf": "53 70 21 86",
        "problem": ("Kasper har svært ved at fastholde job og har haft 9 ansættelser på 6 år. Han beskriver "
                    "indre uro, impulsivitet, glemsomhed og at han altid har haft svært ved at strukturere sin "
                    "hverdag. Det ønskes vurderet, om der er tale om ADHD eller anden psykiatrisk lidelse, og hvad "
                    "det betyder for hans arbejdsevne og behandlingsmuligheder."),
    }
    doc = _new_docx("Marianne Toft")
    doc.add_heading("Henvisning til Socialmedicinsk Enhed", level=1)
    doc.add_paragraph("Jammerbugt Kommune, Jobcenter - Team Ydelse og Indsats")
    for label, value in (("Navn", d["navn"]), ("Cpr.nr.", d["cpr"]), ("Telefon", d["tlf"]),
                         ("Adresse", "Toftegårdsvej 3, 9440 Aabybro"),
                         ("Ønsket undersøgelse", "Psykiatrisk speciallægeerklæring"),
                         ("Problemstilling / spørgsmål", d["problem"]),
                         ("Vedlagte akter", "Sociale akter, LÆ 265, skoleudtalelse fra 1994"),
                         ("Sagsbehandler", "Marianne Toft, tlf. 72 57 70 44"), ("Dato", "19. november 2026")):
        p = doc.add_paragraph()
        p.add_run(f"{label}: ").bold = True
        p.add_run(value)
    form = _docx_bytes(doc)
    html = ("<html><body><p>Hej</p><p>Hermed henvisning, se vedhæftede skema.</p>"
            "<p>Med venlig hilsen<br>Marianne Toft<br>Jobkonsulent<br>Jammerbugt Kommune<br>Tlf. 72 57 70 44</p>"
            '<p><img src="cid:logo.f06.20261119092215.mt@jammerbugt.dk" alt="Jammerbugt Kommune"></p>'
            "</body></html>")
    raw = _mail(
        sender=("Marianne Toft", "mt@jammerbugt.dk"), subject="Henvisning - Kasper U. Brandt",
        date="Thu, 19 Nov 2026 09:22:15 +0100", msgid="f06.20261119092215.mt",
        body=("Hej\n\nHermed henvisning, se vedhæftede skema."
              + _sig("Marianne Toft", "Jobkonsulent", "Jammerbugt Kommune", "72 57 70 44")),
        html=html, logo=True,
        attachments=[("Henvisning til SME.docx", form, DOCX_T),
                     ("LÆ 265.pdf", text_pdf("Lægeerklæring LÆ 265", [
                         "Uro og koncentrationsbesvær siden barndommen. Ikke udredt for ADHD.",
                         "Henvises til vurdering."], doc_id="f06-lae"), PDF_T)],
    )
    return "f06-henvisning-docx-afsnit.eml", raw, _exp(
        "accepted", examinations=["psykiatrisk_erklaering"], name=d["navn"],
        basis=("seed 004 e-mail route: DOCX form with paragraphs 'Label: value' (bold label run + value run); "
               "the signature logo is inline and does not count, the DOCX and LÆ 265 are real attachments"))


# --- f07 -------------------------------------------------------------------------------------

def _f07():
    d = {"navn": "Jonas Ravn-Pedersen", "cpr": "310199-2158"}
    doc = _new_docx("Henrik Lyngsø")
    doc.add_heading("PSYK 141 - Henvisning til psykologisk undersøgelse", level=1)
    doc.add_paragraph("Rebild Kommune, Jobcenter")
    _two_col_table(doc, [
        ("Borgers navn", d["navn"]),
        ("CPR-nr.", d["cpr"]),
        ("Adresse", "Jernbanegade 22, 9530 Støvring"),
        ("Telefon", "26 93 47 15"),
        ("Ønsket undersøgelse", "Psykologisk undersøgelse (gerne med neuropsykologisk testning)"),
        ("Henvisningsårsag / problemstilling",
         "Jonas var i 2024 ude for en trafikulykke med hovedtraume. Siden har han haft hovedpine, "
         "udtalt træthed og problemer med hukommelse og overblik.\n"
         "Det ønskes belyst: Hvilke kognitive følger har han? Hvordan påvirker de hans muligheder for at "
         "vende tilbage til arbejde som tømrer eller anden beskæftigelse?"),
        ("Tidligere undersøgelser / behandling", "Genoptræning på Neurocenter 2024-2025. Ingen psykologisk testning."),
        ("Vedlagte bilag", "Epikrise fra Neurokirurgisk Afdeling, sociale akter"),
        ("Sagsbehandler", "Henrik Lyngsø, tlf. 99 88 61 73"),
        ("Dato", "19.11.2026"),
    ])
    form = _docx_bytes(doc)
    raw = _mail(
        sender=("Henrik Lyngsø", "hely@rebild.dk"), subject="PSYK 141",
        date="Thu, 19 Nov 2026 11:05:38 +0100", msgid="f07.20261119110538.hely",
        body=("Goddag\n\nHermed henvisning, se vedhæftede skema.\n\nEpikrise og sociale akter er vedhæftet."
              + _sig("Henrik Lyngsø", "Rehabiliteringskonsulent", "Jobcenter Rebild", "99 88 61 73")),
        cte="quoted-printable",
        attachments=[("PSYK141_Ravn-Pedersen.docx", form, DOCX_T),
                     ("Epikrise.pdf", text_pdf("Epikrise, Neurokirurgisk Afdeling", [
                         "Indlagt efter trafikulykke med commotio og lille kontusionsblødning frontalt.",
                         "Udskrevet til genoptræning."], doc_id="f07-epi"), PDF_T)],
    )
    return "f07-psyk141-docx-tabel.eml", raw, _exp(
        "accepted", examinations=["psykologisk_undersoegelse"], name=d["navn"],
        basis=("seed 004 e-mail route + PSYK 141: DOCX with a 2-column table (label cell | value cell), "
               "multi-paragraph problem cell"))


# --- f08 -------------------------------------------------------------------------------------

def _f08():
    d = {"navn": "Anne Sofie Kjærsgaard", "cpr": "020474-0712"}
    doc = _new_docx("Vesthimmerlands Kommune")
    doc.add_heading("Henvisning til Socialmedicinsk Enhed", level=1)
    doc.add_paragraph("Vesthimmerlands Kommune - Jobcenter. Udfyld felterne og send via sikker mail.")
    _label_sdt_paragraph(doc, "Borgers navn", "Borgers navn", "navn", d["navn"])
    _label_sdt_paragraph(doc, "CPR-nr.", "CPR-nr.", "cpr", d["cpr"])
    _label_sdt_paragraph(doc, "Telefon", "Telefon", "telefon", "29 14 88 03")
    _label_sdt_paragraph(doc, "Ønsket undersøgelse", "Ønsket undersøgelse", "undersoegelse",
                         "Socialmedicinsk speciallægeerklæring", dropdown=EXAMS)
    p = doc.add_paragraph()
    p.add_run("Problemstilling / spørgsmål:").bold = True
    from docx.oxml import parse_xml
    doc.element.body.insert(list(doc.element.body).index(p._p) + 1, parse_xml(_sdt_block_xml(
        "Problemstilling", "problemstilling", [
            "Anne Sofie fik konstateret sclerose i 2019 og oplever tiltagende træthed, nedsat gangdistance og "
            "balanceproblemer.",
            "Hvad er hendes aktuelle funktionsniveau? Hvilke skånehensyn kræves i et job, og kan "
            "funktionsniveauet forventes at ændre sig de kommende år?"])))
    _label_sdt_paragraph(doc, "Vedlagte akter", "Vedlagte akter", "akter",
                         "Sociale akter, ambulatorienotater fra Neurologisk Afdeling")
    _label_sdt_paragraph(doc, "Sagsbehandler", "Sagsbehandler", "sagsbehandler", "Gitte Bak, tlf. 99 66 74 21")
    form = _docx_bytes(doc)
    raw = _mail(
        sender=("Gitte Bak", "gbak@vesthimmerland.dk"), subject="Henvisning, se vedhæftede",
        date="Thu, 19 Nov 2026 14:30:00 +0100", msgid="f08.20261119143000.gbak",
        body=("Hej SME\n\nHermed henvisning, se vedhæftede skema."
              + _sig("Gitte Bak", "Sagsbehandler", "Jobcenter Vesthimmerland", "99 66 74 21", disclaimer=True)),
        attachments=[("Henvisningsskema_SME.docx", form, DOCX_T),
                     ("Ambulatorienotater.pdf", text_pdf("Neurologisk Ambulatorium", [
                         "Attakvis sclerose, stabil på behandling. Træthed og balanceproblemer."],
                         doc_id="f08-amb"), PDF_T)],
    )
    return "f08-henvisning-docx-indholdskontroller.eml", raw, _exp(
        "accepted", examinations=["socialmedicinsk_erklaering"], name=d["navn"],
        basis=("seed 004 e-mail route: DOCX form whose values are in content controls (run-level w:sdt with "
               "w:alias/w:tag; the examination is a drop-down whose chosen value is in w:sdtContent while all "
               "four choices are w:listItem entries; the problem is a block-level w:sdt)"))


# --- f09 -------------------------------------------------------------------------------------

def _f09():
    d = {
        "navn": "Mette Louise Overgaard", "cpr": None, "tlf": "40 28 17 66",
        "adresse": "Østergade 9, 9700 Brønderslev",
        "undersoegelse": "Psykologisk undersøgelse",
        "problem": ("Mette har gennem mange år haft ustabile relationer, konflikter på arbejdspladser og perioder "
                    "med selvskade. Det ønskes belyst, om der er tale om en personlighedsforstyrrelse, og hvilke "
                    "ressourcer og begrænsninger hun har i forhold til uddannelse og arbejde."),
        "akter": "Sociale akter",
        "sagsbehandler": "Lone Fisker, tlf. 99 45 43 10", "dato": "20.11.2026",
    }
    form = pdf_document(_municipal_field_form(d, kommune="Brønderslev Kommune"),
                        title="Henvisning til Socialmedicinsk Enhed", doc_id="f09-form")
    raw = _mail(
        sender=("Lone Fisker", "lone.fisker@bronderslev.dk"), subject="Henvisning",
        date="Fri, 20 Nov 2026 08:44:12 +0100", msgid="f09.20261120084412.lf",
        body="Hej\n\nHermed henvisning, se vedhæftede skema.\n\nMvh\nLone Fisker\nJobcenter Brønderslev\n",
        attachments=[("Henvisning.pdf", form, PDF_T),
                     ("Sociale akter.pdf", _akter("Sociale akter", d["navn"], [
                         "Uddannelseshjælp. Har afbrudt tre uddannelser. Bor i egen lejlighed."], "f09-akter"), PDF_T)],
    )
    return "f09-henvisning-pdf-tomt-cpr.eml", raw, _exp(
        "incomplete", missing=["cpr"], examinations=["psykologisk_undersoegelse"], name=d["navn"],
        basis=("contract 'cpr is missing when no valid CPR number is given': the form's Cpr.nr. field has no /V "
               "and neither body nor the other attachment gives a CPR number"))


# --- f10 -------------------------------------------------------------------------------------

def _f10():
    d = {"navn": "Henrik Bo Lauridsen", "cpr": "250863-1429"}
    doc = _new_docx("Susanne Vad")
    doc.add_heading("Henvisning til Socialmedicinsk Enhed", level=1)
    doc.add_paragraph("Morsø Kommune, Jobcenter Mors")
    _two_col_table(doc, [
        ("Navn", d["navn"]),
        ("Cpr.nr.", d["cpr"]),
        ("Telefon", "24 81 50 37"),
        ("Adresse", "Algade 30, 7900 Nykøbing M"),
        ("Ønsket undersøgelse", "Socialmedicinsk speciallægeerklæring"),
        ("Problemstilling / spørgsmål", ""),
        ("Vedlagte akter", "LÆ 265"),
        ("Sagsbehandler", "Susanne Vad, tlf. 99 70 74 12"),
    ])
    form = _docx_bytes(doc)
    raw = _mail(
        sender=("Susanne Vad", "susanne.vad@mors.dk"), subject="Henvisning til socialmedicinsk erklæring",
        date="Fri, 20 Nov 2026 10:17:45 +0100", msgid="f10.20261120101745.sv",
        body=("Hej\n\nHermed henvisning, se vedhæftede skema. LÆ 265 er vedlagt."
              + _sig("Susanne Vad", "Socialrådgiver", "Jobcenter Mors", "99 70 74 12")),
        attachments=[("Henvisning SME.docx", form, DOCX_T),
                     ("LÆ 265.pdf", text_pdf("Lægeerklæring LÆ 265", ["Attesten er udfyldt af egen læge."],
                                             doc_id="f10-lae"), PDF_T)],
    )
    return "f10-henvisning-docx-tom-problemstilling.eml", raw, _exp(
        "incomplete", missing=["problem"], examinations=["socialmedicinsk_erklaering"], name=d["navn"],
        basis=("seed 004 'Hvilken problemstilling ønskes belyst': the 'Problemstilling / spørgsmål' cell of the "
               "DOCX table is empty and nothing else in the mail says what is to be assessed"))


# --- f11 -------------------------------------------------------------------------------------

def _f11():
    d = {"navn": "Kirsten Marie Lind", "cpr": "140469-0238"}
    doc = _new_docx("Læsø Kommune")
    doc.add_heading("Henvisning til Socialmedicinsk Enhed", level=1)
    doc.add_paragraph("Læsø Kommune - Borgerservice og Beskæftigelse")
    t = doc.add_table(rows=0, cols=2)
    t.style = "Table Grid"
    rows = [("Borgers navn", "navn", d["navn"], None), ("CPR-nr.", "cpr", d["cpr"], None),
            ("Telefon", "telefon", "98 49 12 07", None),
            ("Ønsket undersøgelse", "undersoegelse", None, EXAMS),
            ("Problemstilling", "problemstilling",
             "Kirsten har i flere år haft rygsmerter og perioder med nedtrykthed og træthed. Hvilke "
             "helbredsmæssige begrænsninger har hun i forhold til arbejde, og er der yderligere "
             "behandlingsmuligheder?", None),
            ("Vedlagte akter", "akter", "Sociale akter, speciallægeerklæring fra rygkirurg 2025", None)]
    for label, tag, value, dd in rows:
        cells = t.add_row().cells
        cells[0].paragraphs[0].add_run(label).bold = True
        if dd:
            _cell_sdt(cells[1], label, tag, value, dropdown=dd, placeholder="Vælg et element.")
        else:
            _cell_sdt(cells[1], label, tag, value)
    form = _docx_bytes(doc)
    raw = _mail(
        sender=("Jens Ole Christiansen", "joc@laesoe.dk"), subject="Henvisning",
        date="Fri, 20 Nov 2026 12:02:33 +0100", msgid="f11.20261120120233.joc",
        body=("Kære Socialmedicinsk Enhed\n\nHermed henvisning vedr. en borger fra Læsø, se vedhæftede skema. "
              "Sociale akter og speciallægeerklæringen er vedlagt."
              + _sig("Jens Ole Christiansen", "Sagsbehandler", "Læsø Kommune", "98 49 80 22")),
        attachments=[("Henvisning.docx", form, DOCX_T),
                     ("Speciallægeerklæring 2025.pdf", text_pdf("Speciallægeerklæring", [
                         "Degenerative forandringer i lænderyggen. Ikke operationskandidat."],
                         doc_id="f11-spec"), PDF_T)],
    )
    return "f11-henvisning-docx-undersoegelse-ikke-valgt.eml", raw, _exp(
        "incomplete", missing=["examination"], name=d["navn"],
        basis=("seed 004 'Ønsket undersøgelse': the examination drop-down content control still shows its "
               "placeholder 'Vælg et element.' (w:showingPlcHdr); the four w:listItem choices are not a choice"))


# --- f12 -------------------------------------------------------------------------------------

def _f12():
    raw = _mail(
        sender=("Karina Højgaard", "karina.hoejgaard@rebild.dk"), subject="Henvisning til SME",
        date="Mon, 23 Nov 2026 09:05:10 +0100", msgid="f12.20261123090510.kh",
        body=("Hej\n\nHermed henvisning. Oplysningerne om borgeren fremgår af vedhæftede skema, som er "
              "scannet ind. Sociale akter er vedhæftet."
              + _sig("Karina Højgaard", "Sagsbehandler", "Jobcenter Rebild", "99 88 64 09")),
        attachments=[("Scan_20261123_0904.pdf", _scanned_pdf("f12-scan"), PDF_T),
                     ("Sociale akter.pdf", text_pdf("Sociale akter", [
                         "Sagsforløb 2024-2026. Kontanthjælp. Aktivitetsparat."], doc_id="f12-akter"), PDF_T)],
    )
    return "f12-henvisning-pdf-scannet.eml", raw, _exp(
        "manual", reason="uncertain",
        basis=("contract manual 'uncertain': the body says the details are in the scanned form, whose PDF has "
               "only an image XObject (no text, no fonts): the items are there but cannot be read"))


# --- f13 -------------------------------------------------------------------------------------

def _f13():
    d = {
        "afsender": "Jobcenter Bronderslev", "sagsbehandler": "Anders Kjeldsen, tlf. 99 45 44 76",
        "navn": "Thomas Vestergaard Nielsen", "cpr": "190784-1952", "adresse": "Kirkevej 4, 9310 Vodskov",
        "tlf": "60 12 45 98", "undersoegelse": "Psykologisk undersøgelse",
        "problem": "Det ønskes belyst, om borgeren har en depression, og hvordan den påvirker arbejdsevnen.",
        "tidligere": "Ingen.", "bilag": "Sociale akter", "dato": "23.11.2026",
    }
    lay = _Layout()
    _psyk141_layout(lay, d)
    form = _encrypt(pdf_document(lay.pages, title="PSYK 141", doc_id="f13-form"), "Jobcenter2026!",
                    "ejer-f13-kodeord", "f13-form")
    raw = _mail(
        sender=("Anders Kjeldsen", "ak@bronderslev.dk"), subject="Henvisning til psykologisk undersøgelse",
        date="Mon, 23 Nov 2026 11:48:29 +0100", msgid="f13.20261123114829.ak",
        body=("Hej\n\nHermed henvisning til psykologisk undersøgelse, se vedhæftede skema.\n"
              "Dokumentet er beskyttet med adgangskode, som sendes i en separat mail."
              + _sig("Anders Kjeldsen", "Sagsbehandler", "Jobcenter Brønderslev", "99 45 44 76", disclaimer=True)),
        attachments=[("PSYK 141.pdf", form, PDF_T)],
    )
    return "f13-psyk141-pdf-krypteret.eml", raw, _exp(
        "manual", reason="uncertain",
        basis=("contract manual 'uncertain': name, CPR and problem are in a PSYK 141 encrypted with a user "
               "password (password sent separately), so they cannot be read; no missing-items reply"))


# --- f14 -------------------------------------------------------------------------------------

def _f14():
    d = {
        "kommune": "Frederikshavn Kommune", "navn": "Peter Mortensen Lykke", "cpr": "300570-1285",
        "tlf": "51 44 09 27", "undersoegelse": "Socialmedicinsk speciallægeerklæring",
        "problem": "Hvilke skånehensyn kræves efter hjerteoperation?", "akter": "Journalnotat",
        "sagsbehandler": "Birgit Holt", "dato": "23.11.2026",
    }
    lay = _Layout()
    _municipal_text_layout(lay, d)
    full = pdf_document(lay.pages, title="Henvisning", doc_id="f14-form")
    cut = full.index(b"3 0 obj") + 40  # inside the first page object: no content stream arrived
    raw = _mail(
        sender=("Birgit Holt", "birgit.holt@frederikshavn.dk"), subject="Henvisning",
        date="Mon, 23 Nov 2026 14:20:55 +0100", msgid="f14.20261123142055.bh",
        body=("Hej\n\nHermed henvisning, se vedhæftede skema.\nJournalnotat vedlagt."
              + _sig("Birgit Holt", "Sagsbehandler", "Jobcenter Frederikshavn", "98 45 61 70")),
        attachments=[("Henvisningsskema.pdf", full[:cut], PDF_T),
                     ("Journalnotat.pdf", text_pdf("Journalnotat", [
                         "Borger orienteret om henvisning til Socialmedicinsk Enhed."], doc_id="f14-jn"), PDF_T)],
    )
    return "f14-henvisning-pdf-afkortet.eml", raw, _exp(
        "manual", reason="uncertain",
        basis=("contract manual 'uncertain': the form PDF is truncated inside the page object (header, catalog "
               "and page tree only, no content stream, no xref/trailer), so the referral items cannot be read"))


# --- f15 -------------------------------------------------------------------------------------

def _f15():
    lay = _Layout()
    lay.title("Kan borgeren indstilles til bevilling af førtidspension uden at behandle sagen i "
              "rehabiliteringsteamet?", size=12)
    lay.text("Bilag til sag i Mediconnect Proces - undertype 'åbenbart formålsløst'")
    lay.rule()
    lay.text("Del 1 - udfyldes af sagsbehandler", bold=True)
    lay.label_value("Borgers navn:", "Erik Damgaard Holst")
    lay.label_value("CPR-nr.:", "091164-1819")
    lay.label_value("Diagnose:", "Amyotrofisk lateralsklerose (ALS), diagnosticeret marts 2026")
    lay.text("Kommunens begrundelse:", bold=True)
    lay.text("Borgeren har en hurtigt fremskridende neurodegenerativ lidelse med tiltagende lammelser. Der er "
             "bevilget hjemmehjælp og hjælpemidler. Kommunen vurderer, at det er åbenbart formålsløst at "
             "udvikle arbejdsevnen, jf. pensionsloven § 18, stk. 2, og ønsker sundhedskoordinatorens vurdering "
             "af, om sagen kan overgå til behandling efter reglerne om førtidspension.")
    lay.label_value("Sagsbehandler:", "Maja Søgaard Brix, tlf. 99 31 48 02")
    lay.gap()
    lay.text("Del 2 - udfyldes af sundhedskoordinator", bold=True)
    lay.label_value("Vurdering:", "")
    lay.label_value("Dato / underskrift:", "")
    form = pdf_document(lay.pages, title="Bilag 1 - åbenbar sag", doc_id="f15-form")
    raw = _mail(
        sender=("Maja Søgaard Brix", "msb-jobcenter@aalborg.dk"), subject="Henvisning",
        date="Tue, 24 Nov 2026 08:31:16 +0100", msgid="f15.20261124083116.msb",
        body=("Til Socialmedicinsk Enhed\n\nHermed henvisning, se vedhæftede skema og lægelige akter."
              + _sig("Maja Søgaard Brix", "Socialrådgiver", "Jobcenter Aalborg", "99 31 48 02")),
        attachments=[("Skema.pdf", form, PDF_T),
                     ("Epikrise Neurologisk Afdeling.pdf", text_pdf("Epikrise", [
                         "ALS diagnosticeret 2026. Progredierende pareser i arme og ben."], doc_id="f15-epi"), PDF_T)],
    )
    return "f15-aabenbar-sag-pdf-skema.eml", raw, _exp(
        "redirect", reason="aabenbar_sag",
        basis=("seed 004 'Åbenbar sag': the attached skema 'Kan borgeren indstilles til bevilling af "
               "førtidspension uden at behandle sagen i rehabiliteringsteamet?' (pensionsloven § 18, stk. 2, "
               "åbenbart formålsløst) goes via Mediconnect Proces"))


# --- f16 / f17 (400 pages) / f18 (20 pages) --------------------------------------------------

_JOURNAL = [
    "Samtale med borger i jobcentret. Borger fortæller om dårlig søvn og smerter.",
    "Telefonisk kontakt. Borger har aflyst aftale på grund af sygdom.",
    "Opfølgning: praktikforløb aftalt med 10 timer om ugen, borger møder stabilt.",
    "Lægeattest modtaget og journaliseret. Ingen ændring i behandling.",
    "Borger deltager i mentorforløb. Mentor beskriver god motivation, men lav energi.",
    "Møde med borger og mentor. Aftalt at indhente statusattest.",
]


def _long_pdf(form_layout, pages: int, name: str, doc_id: str) -> bytes:
    lay = _Layout()
    form_layout(lay)
    lay.new_page()
    for p in range(2, pages + 1):
        if p > 2:
            lay.new_page()
        lay.title(f"Sagsakter vedr. {name} - side {p} af {pages}", size=11)
        for i in range(6):
            lay.text(f"{(p * 7 + i) % 28 + 1:02d}.{(p // 28) % 12 + 1:02d}.2025: " + _JOURNAL[(p + i) % len(_JOURNAL)])
    return pdf_document(lay.pages, title=f"Henvisning og akter - {name}", doc_id=doc_id, compress=True)


def _f16():
    d = {
        "kommune": "Thisted Kommune", "navn": "Lars Ebbesen Vang", "cpr": "150276-1637", "tlf": "20 84 33 19",
        "undersoegelse": "Psykiatrisk speciallægeerklæring",
        "problem": ("Foreligger der en behandlingskrævende depression eller angstlidelse, og hvordan påvirker den "
                    "arbejdsevnen?"),
        "akter": "Alle sagsakter er samlet i dette dokument.", "sagsbehandler": "Niels Holm Bundgaard",
        "dato": "24.11.2026",
    }
    pdf = _long_pdf(lambda lay: _municipal_text_layout(lay, d), 400, d["navn"], "f16-long")
    raw = _mail(
        sender=("Niels Holm Bundgaard", "nhb@thisted.dk"), subject="Henvisning + akter",
        date="Tue, 24 Nov 2026 10:10:10 +0100", msgid="f16.20261124101010.nhb",
        body=("Hej\n\nHermed henvisning, se vedhæftede skema. Skema og alle akter er samlet i én fil."
              + _sig("Niels Holm Bundgaard", "Sagsbehandler", "Jobcenter Thisted", "99 17 28 35")),
        attachments=[("Henvisning og akter samlet.pdf", pdf, PDF_T)],
    )
    return "f16-henvisning-pdf-400-sider.eml", raw, _exp(
        "manual", reason="uncertain",
        basis=("contract manual 'uncertain' / brief: a 400-page PDF is past the form reader's limit, so the "
               "form is not read; the body only points to the skema, so no item can be confirmed"))


def _f17():
    d = {
        "kommune": "Mariagerfjord Kommune", "navn": "Niels Erik Holm", "cpr": "061062-1375", "tlf": "51 88 20 47",
        "undersoegelse": "Socialmedicinsk speciallægeerklæring",
        "problem": ("Niels Erik har KOL og knæartrose. Hvilke funktionsbegrænsninger har han, og hvilke typer "
                    "arbejde kan han varetage?"),
        "akter": "Alle sagsakter er samlet i dette dokument.", "sagsbehandler": "Bente Riis", "dato": "24.11.2026",
    }
    pdf = _long_pdf(lambda lay: _municipal_text_layout(lay, d), 400, d["navn"], "f17-long")
    raw = _mail(
        sender=("Bente Riis", "bente.riis@mariagerfjord.dk"), subject="Henvisning til socialmedicinsk erklæring",
        date="Tue, 24 Nov 2026 13:25:40 +0100", msgid="f17.20261124132540.br",
        body=("Hej\n\nHermed henvisning, se også vedhæftede skema (samlet med alle akter).\n\n"
              "Navn: Niels Erik Holm\nCpr.nr.: 061062-1375\nTlf.: 51 88 20 47\n"
              "Ønsket undersøgelse: socialmedicinsk speciallægeerklæring\n"
              "Problemstilling: Niels Erik har KOL og knæartrose. Hvilke funktionsbegrænsninger har han, og "
              "hvilke typer arbejde kan han varetage?"
              + _sig("Bente Riis", "Sagsbehandler", "Jobcenter Mariagerfjord", "97 11 30 56")),
        attachments=[("Henvisning og akter.pdf", pdf, PDF_T)],
    )
    return "f17-henvisning-pdf-400-sider-alt-i-mail.eml", raw, _exp(
        "accepted", examinations=["socialmedicinsk_erklaering"], name="Niels Erik Holm",
        basis=("seed 004 e-mail route: every item is in the body; the 400-page PDF (too big to read) is "
               "still a real attached file"))


def _f18():
    d = {
        "kommune": "Vesthimmerlands Kommune", "navn": "Sara El-Amin Christensen", "cpr": "270888-2736",
        "tlf": "71 29 64 50", "undersoegelse": "Psykiatrisk speciallægeerklæring",
        "problem": ("Sara har haft flere indlæggelser med psykotiske episoder, senest i 2025. Aktuelt stabil på "
                    "medicin. Hvad er diagnosen og prognosen, og hvilke skånehensyn er nødvendige i uddannelse "
                    "eller arbejde?"),
        "akter": "Sociale akter og journaludskrifter, side 2-20 i dette dokument.",
        "sagsbehandler": "Kim Overby, tlf. 99 66 70 12", "dato": "25.11.2026",
    }
    pdf = _long_pdf(lambda lay: _municipal_text_layout(lay, d), 20, d["navn"], "f18-long")
    raw = _mail(
        sender=("Kim Overby", "kim.overby@vesthimmerland.dk"), subject="Henvisning",
        date="Wed, 25 Nov 2026 09:40:03 +0100", msgid="f18.20261125094003.ko",
        body=("Hej\n\nHermed henvisning, se vedhæftede skema. Akterne følger efter skemaet i samme PDF."
              + _sig("Kim Overby", "Sagsbehandler", "Jobcenter Vesthimmerland", "99 66 70 12")),
        attachments=[("Henvisning Sara.pdf", pdf, PDF_T)],
    )
    return "f18-henvisning-pdf-20-sider.eml", raw, _exp(
        "accepted", examinations=["psykiatrisk_erklaering"], name=d["navn"],
        basis=("seed 004 e-mail route: a 20-page PDF (within limits) whose page 1 is the form with all items "
               "and whose pages 2-20 are the case files"))


# --- f19 / f20 (broken DOCX) -----------------------------------------------------------------

def _plain_form_docx(name: str, cpr: str, author: str) -> bytes:
    doc = _new_docx(author)
    doc.add_heading("Henvisning til Socialmedicinsk Enhed", level=1)
    _two_col_table(doc, [("Navn", name), ("Cpr.nr.", cpr), ("Ønsket undersøgelse", "Psykologisk undersøgelse"),
                         ("Problemstilling / spørgsmål", "Kognitive vanskeligheder og arbejdsevne.")])
    return _docx_bytes(doc)


def _f19():
    docx_bytes = _broken_docx(_plain_form_docx("Jette Kamp Iversen", "110391-2244", "Hjørring Kommune"))
    raw = _mail(
        sender=("Kathrine Friis", "kathrine.friis@hjoerring.dk"), subject="Henvisning",
        date="Wed, 25 Nov 2026 11:11:52 +0100", msgid="f19.20261125111152.kf",
        body=("Hej\n\nHermed henvisning, se vedhæftede skema. Sociale akter vedlagt."
              + _sig("Kathrine Friis", "Socialrådgiver", "Jobcenter Hjørring", "72 33 68 40")),
        attachments=[("Henvisningsskema.docx", docx_bytes, DOCX_T),
                     ("Sociale akter.pdf", text_pdf("Sociale akter", [
                         "Sagsforløb: ledig, kontanthjælp, aktivitetsparat."], doc_id="f19-akter"), PDF_T)],
    )
    return "f19-henvisning-docx-defekt-zip.eml", raw, _exp(
        "manual", reason="uncertain",
        basis=("contract manual 'uncertain': the DOCX form is a broken zip (cut inside word/document.xml, no "
               "central directory); the body says the details are in it"))


def _f20():
    docx_bytes = _bomb_docx(_plain_form_docx("Ib Søren Kragelund", "220463-1573", "Rebild Kommune"))
    raw = _mail(
        sender=("Dorthe Vestergaard", "dove@rebild.dk"), subject="Henvisning til SME",
        date="Wed, 25 Nov 2026 14:02:19 +0100", msgid="f20.20261125140219.dove",
        body=("Hej\n\nHermed henvisning, se vedhæftede skema."
              + _sig("Dorthe Vestergaard", "Sagsbehandler", "Jobcenter Rebild", "99 88 60 27")),
        attachments=[("Henvisning.docx", docx_bytes, DOCX_T)],
    )
    return "f20-henvisning-docx-zipbombe.eml", raw, _exp(
        "manual", reason="uncertain",
        basis=("contract manual 'uncertain': word/document.xml inflates to 128 MiB of blanks after an unclosed "
               "<w:body> (compression ratio > 1000) and holds no form text; the reader must refuse it, and the "
               "body says the details are in the skema"))


# --- f21 / f22 (portal cases through the form) -----------------------------------------------

def _f21():
    d = {
        "kommune": "Jammerbugt Kommune", "navn": "Morten Bisgaard Sørensen", "cpr": "030790-1461",
        "tlf": "30 45 82 16", "forsoergelse": "Ressourceforløb (bevilget 1. marts 2026 for 2 år)",
        "undersoegelse": "Psykiatrisk speciallægeerklæring",
        "problem": ("Borgeren er i ressourceforløb. Han har fået diagnosen paranoid skizofreni i 2021 og har "
                    "vedvarende negative symptomer. Indsatserne i forløbet har ikke rykket arbejdsevnen. Vi ønsker "
                    "en psykiatrisk vurdering af prognosen og af, om yderligere indsatser kan udvikle arbejdsevnen."),
        "akter": "Rehabiliteringsplan, LÆ 265, psykiatriske journalnotater",
        "sagsbehandler": "Rikke Dalsgaard, tlf. 72 57 73 90", "dato": "26.11.2026",
    }
    lay = _Layout()
    _municipal_text_layout(lay, d)
    form = pdf_document(lay.pages, title="Henvisning til SME", doc_id="f21-form")
    raw = _mail(
        sender=("Rikke Dalsgaard", "rikke.dalsgaard@jammerbugt.dk"), subject="Henvisning",
        date="Thu, 26 Nov 2026 09:15:47 +0100", msgid="f21.20261126091547.rd",
        body=("Hej\n\nHermed henvisning, se vedhæftede skema. Akter vedlagt."
              + _sig("Rikke Dalsgaard", "Koordinerende sagsbehandler", "Jobcenter Jammerbugt", "72 57 73 90")),
        attachments=[("Henvisning SME.pdf", form, PDF_T),
                     ("LÆ 265.pdf", text_pdf("Lægeerklæring LÆ 265", [
                         "Paranoid skizofreni. Behandles i distriktspsykiatrien."], doc_id="f21-lae"), PDF_T)],
    )
    return "f21-henvisning-pdf-ressourceforloeb.eml", raw, _exp(
        "redirect", reason="loebende_sag",
        basis=("seed 000 definition of løbende sag (borgeren er i ressourceforløb) + seed 004 'Spørgsmål i "
               "løbende sag' via Mediconnect Proces: the form says 'Forsørgelsesgrundlag: Ressourceforløb' "
               "and 'Borgeren er i ressourceforløb'"))


def _f22():
    doc = _new_docx("Frederikshavn Kommune")
    doc.add_heading("LÆ 271 - Henvisning til Klinisk Funktion", level=1)
    doc.add_paragraph("Speciallægeattest / sundhedsfaglig vurdering i sag om ressourceforløb, fleksjob "
                      "og førtidspension")
    _two_col_table(doc, [
        ("Borgers navn", "Jannie Krogh Laursen"),
        ("CPR-nr.", "180681-2906"),
        ("Telefon", "42 60 31 77"),
        ("Ønsket undersøgelse", "Speciallægeundersøgelse i reumatologi"),
        ("Baggrund for undersøgelsen",
         "Sagen skal behandles i rehabiliteringsteamet i januar 2027. Borgeren har leddegigt og "
         "smerter i hænder og fødder. Der ønskes en vurdering af funktionsevnen i forhold til fleksjob."),
        ("Sundhedskoordinator", "Sundhedskoordinator er konsulteret den 12.11.2026"),
        ("Sagsbehandler", "Helle Brøndum, tlf. 98 45 66 10"),
    ])
    form = _docx_bytes(doc)
    raw = _mail(
        sender=("Helle Brøndum", "hebr@frederikshavn.dk"), subject="Henvisning",
        date="Thu, 26 Nov 2026 12:50:21 +0100", msgid="f22.20261126125021.hebr",
        body=("Hej\n\nHermed henvisning, se vedhæftede skema og akter."
              + _sig("Helle Brøndum", "Rehabiliteringskoordinator", "Jobcenter Frederikshavn", "98 45 66 10")),
        attachments=[("Henvisning_speciallaege.docx", form, DOCX_T),
                     ("Forberedelsesskema.pdf", text_pdf("Forberedelsesskema", [
                         "Borgerens egne oplysninger om helbred og arbejde."], doc_id="f22-fs"), PDF_T)],
    )
    return "f22-lae271-docx-klinisk-funktion.eml", raw, _exp(
        "redirect", reason="klinisk_funktion",
        basis=("seed 004 'Vejledning i henvisning til Klinisk Funktion': the attached form is an LÆ 271 "
               "(Henvisning til Klinisk Funktion) in a case for the rehabiliteringsteam; KF takes precedence"))


# --- f23 / f24 (form plus body) --------------------------------------------------------------

def _f23():
    d = {
        "kommune": "Brønderslev Kommune", "navn": "Lene Bruun Jakobsen", "cpr": "050683-2518", "tlf": "27 19 84 61",
        "undersoegelse": "Psykiatrisk speciallægeerklæring",
        "problem": ("Lene har i mange år haft tilbagevendende depressioner og er i medicinsk behandling. Er "
                    "behandlingen tilstrækkelig, hvad er prognosen, og hvilke skånehensyn skal der tages?"),
        "akter": "Sociale akter, LÆ 265, journal fra Psykiatrisk Ambulatorium",
        "sagsbehandler": "Søren Ahle, tlf. 99 45 45 87", "dato": "27.11.2026",
    }
    lay = _Layout()
    _municipal_text_layout(lay, d)
    form = pdf_document(lay.pages, title="Henvisning", doc_id="f23-form")
    raw = _mail(
        sender=("Søren Ahle", "soren.ahle@bronderslev.dk"),
        subject="Henvisning til psykiatrisk speciallægeerklæring - Lene Bruun Jakobsen",
        date="Fri, 27 Nov 2026 08:05:33 +0100", msgid="f23.20261127080533.sa",
        body=("Kære Socialmedicinsk Enhed\n\n"
              "Hermed henvisning til psykiatrisk speciallægeerklæring vedr.:\n\n"
              "Lene Bruun Jakobsen, cpr.nr. 050683-2518, tlf. 27 19 84 61\n\n"
              "Lene har i mange år haft tilbagevendende depressioner og er i medicinsk behandling. Vi ønsker "
              "svar på, om behandlingen er tilstrækkelig, hvad prognosen er, og hvilke skånehensyn der skal "
              "tages.\n\nUdfyldt henvisningsskema, sociale akter og LÆ 265 er vedhæftet."
              + _sig("Søren Ahle", "Sagsbehandler", "Jobcenter Brønderslev", "99 45 45 87", disclaimer=True)),
        attachments=[("Henvisningsskema.pdf", form, PDF_T),
                     ("Sociale akter.pdf", _akter("Sociale akter", d["navn"], [
                         "Sygemeldt fra job som sosu-hjælper 2025. Kontanthjælp siden 2026."], "f23-akter"), PDF_T),
                     ("LÆ 265.pdf", text_pdf("Lægeerklæring LÆ 265", [
                         "Recidiverende depression. Behandles med antidepressiva."], doc_id="f23-lae"), PDF_T)],
    )
    return "f23-henvisning-pdf-og-fuld-mail.eml", raw, _exp(
        "accepted", examinations=["psykiatrisk_erklaering"], name=d["navn"],
        basis="seed 004 e-mail route: every item both in the body and in the attached form; case files attached")


def _f24():
    doc = _new_docx("Aalborg Kommune")
    doc.add_heading("PSYK 141 - Henvisning til psykologisk undersøgelse", level=1)
    _two_col_table(doc, [
        ("Borgers navn", "Mikkel Søndergaard Friis"),
        ("CPR-nr.", ""),
        ("Ønsket undersøgelse", "Psykologisk undersøgelse"),
        ("Henvisningsårsag / problemstilling",
         "Mikkel har siden folkeskolen haft svært ved sociale relationer og forandringer og har aldrig "
         "haft fast arbejde. Der ønskes en vurdering af, om han har en autismespektrumforstyrrelse, og af "
         "hans kognitive profil og muligheder for uddannelse eller arbejde."),
        ("Vedlagte bilag", "Sociale akter, udtalelse fra UU-vejleder"),
        ("Sagsbehandler", "Anja Mølholm, tlf. 99 31 57 66"),
    ])
    form = _docx_bytes(doc)
    raw = _mail(
        sender=("Anja Mølholm", "anja.moelholm@aalborg.dk"), subject="Henvisning PSYK 141",
        date="Fri, 27 Nov 2026 10:44:09 +0100", msgid="f24.20261127104409.am",
        body=("Hej\n\nHenvisning vedr. Mikkel Søndergaard Friis, cpr.nr. 170493-1187.\n"
              "Øvrige oplysninger fremgår af vedhæftede PSYK 141. Sociale akter vedlagt."
              + _sig("Anja Mølholm", "Socialrådgiver", "Jobcenter Aalborg", "99 31 57 66")),
        attachments=[("PSYK 141.docx", form, DOCX_T),
                     ("Sociale akter.pdf", text_pdf("Sociale akter", [
                         "Uddannelseshjælp siden 2022. Har boet hjemme hos forældre."], doc_id="f24-akter"), PDF_T)],
    )
    return "f24-psyk141-docx-delvis-i-mail.eml", raw, _exp(
        "accepted", examinations=["psykologisk_undersoegelse"], name="Mikkel Søndergaard Friis",
        basis=("seed 004 e-mail route: CPR only in the body (the form's CPR-nr. cell is empty), name, "
               "examination and problem in the PSYK 141 table; case files attached"))


_BUILDERS = [_f01, _f02, _f03, _f04, _f05, _f06, _f07, _f08, _f09, _f10, _f11, _f12,
             _f13, _f14, _f15, _f16, _f17, _f18, _f19, _f20, _f21, _f22, _f23, _f24]


def build() -> list[tuple[str, bytes, dict]]:
    """(name, raw message bytes, expectation) for every form message; deterministic."""
    global _sdt_ids
    _sdt_ids = iter(range(610_000_001, 10**10))
    return [b() for b in _BUILDERS]


def _toml_value(v) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


if __name__ == "__main__":
    import pathlib

    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for name, raw, exp in build():
        (out / name).write_bytes(raw)
        lines.append(f'["{name}"]')
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in exp.items())
        lines.append("")
    (out / "expected.toml").write_text("\n".join(lines), encoding="utf-8")
    print(f"{len(list(out.glob('*.eml')))} messages written to {out}")
