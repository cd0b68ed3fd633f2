"""An adversarial corpus, built by code at test time (nothing big in git).

`build()` gives (name, raw bytes, class) for every message; `cases()` gives the same with what
each message must (or must not) lead to. Classes:

- `cpu_stall`     input that makes a parser or a regular expression work for a long time
- `memory_bomb`   input that makes a parser hold far more than its size
- `cpr_leak`      CPR numbers written with every separator class, where a reply might echo them
- `reply_injection`  URLs, addresses, controls and bidi overrides where a reply might echo them
- `mime_defect`   broken MIME, forged internal headers, ambiguous senders
- `garbage`       bytes that are hardly (or not) a message
- `hostile_attachment`  PDF and DOCX files built to hurt their readers

Most messages come from municipal addresses (they pass the sender check and reach the field
readers). Every CPR number planted is in `SECRETS` (10 digits), so a test can look for each in
any spelling; URLs and addresses planted use the markers in `MARKERS`.
"""

from __future__ import annotations

import base64
import hashlib
import io
import random
import zipfile
import zlib
from dataclasses import dataclass, field
from functools import lru_cache

from tests.mailfactory import BODY, PDF

# Valid CPR numbers (real dates, the century digit right); every one planted somewhere.
S1 = "1203851233"  # the one in mailfactory.BODY
S2 = "0711794321"
S3 = "2402881357"
S4 = "3006652468"
S5 = "1512920987"
SECRETS = (S1, S2, S3, S4, S5)
# Substrings of every URL, domain or address planted (a reply must hold none of them).
MARKERS = ("evil", "attacker", "phish", "example", "xn--", "bit.ly")

BODY_NO_CPR = BODY.replace("CPR: 120385-1233\n", "")
UNREADABLE = frozenset({"manual", "ignored"})  # a body that cannot be read gets no reply
REPLIES = frozenset({"accepted", "incomplete", "redirect"})


@dataclass
class Case:
    name: str
    raw: bytes
    cls: str
    allowed: frozenset[str] | None = None  # decisions allowed (None: any)
    manual_reasons: frozenset[str] | None = None  # when set: decision manual with one of these
    checks: dict = field(default_factory=dict)  # extra: {"sha256": {filename-suffix: hex}}
    note: str = ""


def _crlf(s: str) -> bytes:
    return s.strip("\n").replace("\n", "\r\n").encode("utf-8")


_mid = iter(range(1, 10**9))


def head(subject: str = "Henvisning til psykologisk undersøgelse", from_: str = "Mette Sørensen <mette.soerensen@aalborg.dk>",
         extra: str = "", ctype: str = 'text/plain; charset="utf-8"', cte: str = "8bit", mid: str | None = None,
         raw8: bool = False) -> bytes:
    """A header block (bytes, CRLF, ending in the blank line). Non-ASCII subjects and display
    names are RFC 2047 encoded, as mail clients write them, unless `raw8`."""
    if not raw8:
        subject = _enc(subject)
        if not from_.isascii():
            name, _, addr = from_.rpartition(" <")
            from_ = f"{_enc(name.strip(chr(34)))} <{addr}"
    lines = [f"From: {from_}", "To: socialmedicin@rn.dk", f"Subject: {subject}",
             "Date: Mon, 17 Nov 2025 10:00:00 +0100",
             f"Message-ID: {mid or f'<adv-{next(_mid)}@aalborg.dk>'}", "MIME-Version: 1.0"]
    if ctype:
        lines.append(f"Content-Type: {ctype}")
    if cte:
        lines.append(f"Content-Transfer-Encoding: {cte}")
    if extra:
        lines += extra.strip("\n").split("\n")
    return "\r\n".join(lines).encode("utf-8") + b"\r\n\r\n"


def mixed(parts: list[bytes], boundary: str = "adv-b", subject: str = "Henvisning til psykologisk undersøgelse",
          from_: str = "Mette Sørensen <mette.soerensen@aalborg.dk>", extra: str = "", close: bool = True) -> bytes:
    """multipart/mixed from already-encoded parts (each: part headers CRLF CRLF body)."""
    out = [head(subject, from_, extra, f'multipart/mixed; boundary="{boundary}"', "")]
    for p in parts:
        out.append(b"--" + boundary.encode() + b"\r\n" + p + b"\r\n")
    if close:
        out.append(b"--" + boundary.encode() + b"--\r\n")
    return b"".join(out)


def text_part(text: str | bytes, ctype: str = 'text/plain; charset="utf-8"', cte: str = "8bit", extra: str = "") -> bytes:
    body = text if isinstance(text, bytes) else text.replace("\n", "\r\n").encode("utf-8")
    h = f"Content-Type: {ctype}\r\n" + (f"Content-Transfer-Encoding: {cte}\r\n" if cte else "")
    if extra:
        h += extra.strip("\n").replace("\n", "\r\n") + "\r\n"
    return h.encode("utf-8") + b"\r\n" + body


def file_part(name: str, data: bytes, ctype: str = "application/pdf", encode: bool = True) -> bytes:
    body = base64.encodebytes(data).replace(b"\n", b"\r\n") if encode else data
    return (f'Content-Type: {ctype}; name="{name}"\r\nContent-Disposition: attachment; filename="{name}"\r\n'
            f"Content-Transfer-Encoding: {'base64' if encode else '8bit'}\r\n\r\n").encode("utf-8") + body


def pdf_part(name: str = "Sociale_akter.pdf", data: bytes = PDF) -> bytes:
    return file_part(name, data)


# --- PDFs and DOCX built to hurt ---------------------------------------------------------------------

def _pdf(objects: list[bytes], root: int = 1, prev_loop: bool = False) -> bytes:
    """A PDF with a correct xref table for `objects` (object i+1 is objects[i])."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    prev = f" /Prev {xref}" if prev_loop else ""
    out += f"trailer\n<< /Size {len(objects) + 1} /Root {root} 0 R{prev} >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def _stream(data: bytes, filt: str = "") -> bytes:
    f = f" /Filter /{filt}" if filt else ""
    return f"<< /Length {len(data)}{f} >>\nstream\n".encode() + data + b"\nendstream"


def _text_page_pdf(text: str = "Henvisningsskema Navn Karen Lund") -> bytes:
    content = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
    return _pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        _stream(content),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ])


def pdf_heavy_text(pages: int = 25, ops: int = 20000) -> bytes:
    """`pages` pages (the most a form's text is read from), each with `ops` text operators:
    legitimate structure, as costly to extract as a PDF under the size limits gets."""
    content = b"".join(b"BT /F1 9 Tf %d %d Td (a) Tj ET\n" % (i % 500, i % 700) for i in range(ops))
    kids = " ".join(f"{3 + i} 0 R" for i in range(pages)).encode()
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % pages]
    for i in range(pages):
        objs.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
                    b"/Resources << /Font << /F1 %d 0 R >> >> >>" % (3 + pages, 4 + pages))
    objs.append(_stream(zlib.compress(content), "FlateDecode"))
    objs.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    return _pdf(objs)


def pdf_truncated() -> bytes:
    whole = _text_page_pdf()
    return whole[: len(whole) * 2 // 3]


def pdf_flate_bomb(mb: int = 120) -> bytes:
    """One page whose content stream inflates to `mb` MB (about 120 KB compressed)."""
    z = zlib.compressobj(9)
    chunk = b"BT /F1 12 Tf (a) Tj ET\n" * (1 << 16)
    comp = bytearray()
    total = 0
    while total < mb << 20:
        comp += z.compress(chunk)
        total += len(chunk)
    comp += z.flush()
    return _pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        _stream(bytes(comp), "FlateDecode"),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ])


def pdf_many_pages(n: int = 5000) -> bytes:
    """`n` pages, every one the same page object (a few KB)."""
    kids = b" ".join(b"3 0 R" for _ in range(n))
    return _pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + kids + b"] /Count " + str(n).encode() + b" >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
        _stream(b"BT /F1 12 Tf 72 720 Td (Henvisning) Tj ET"),
    ])


def pdf_page_tree_cycle() -> bytes:
    """The page tree's only kid is the tree itself."""
    return _pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [2 0 R 3 0 R] /Count 2 >>",
        b"<< /Type /Pages /Kids [2 0 R] /Parent 2 0 R /Count 1 >>",
    ])


def pdf_xref_loop() -> bytes:
    """The trailer's /Prev points at its own xref section."""
    return _pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
    ], prev_loop=True)


_CT = (b'<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
       b'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
       b'<Default Extension="xml" ContentType="application/xml"/>'
       b'<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.'
       b'wordprocessingml.document.main+xml"/></Types>')
_RELS = (b'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
         b'relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
         b'relationships/officeDocument" Target="word/document.xml"/></Relationships>')
_W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


def _docx(document: bytes | None, extra: list[tuple[str, bytes]] = (), stream_mb: int = 0) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", _CT)
        z.writestr("_rels/.rels", _RELS)
        if stream_mb:  # a big document.xml written in chunks: the zip bomb
            with z.open("word/document.xml", "w", force_zip64=True) as f:
                f.write(f'<?xml version="1.0"?><w:document {_W}><w:body><w:p><w:r><w:t>'.encode())
                chunk = b" " * (1 << 20)
                for _ in range(stream_mb):
                    f.write(chunk)
                f.write(b"</w:t></w:r></w:p></w:body></w:document>")
        elif document is not None:
            z.writestr("word/document.xml", document)
        for name, data in extra:
            z.writestr(name, data)
    return buf.getvalue()


def docx_zip_bomb() -> bytes:
    return _docx(None, stream_mb=300)


def docx_many_entries() -> bytes:
    doc = f'<?xml version="1.0"?><w:document {_W}><w:body><w:p><w:r><w:t>Henvisning</w:t></w:r></w:p></w:body></w:document>'
    return _docx(doc.encode(), [(f"word/media/x{i}.xml", b"") for i in range(3000)])


def docx_billion_laughs() -> bytes:
    ents = '<!ENTITY a0 "lol">' + "".join(f'<!ENTITY a{i} "{("&a%d;" % (i - 1)) * 10}">' for i in range(1, 10))
    doc = (f'<?xml version="1.0"?><!DOCTYPE w:document [{ents}]><w:document {_W}><w:body><w:p><w:r>'
           f"<w:t>&a9;</w:t></w:r></w:p></w:body></w:document>")
    return _docx(doc.encode())


def docx_deep_xml(depth: int = 100_000) -> bytes:
    doc = (f'<?xml version="1.0"?><w:document {_W}><w:body>' + "<w:sdt><w:sdtContent>" * depth
           + "</w:sdtContent></w:sdt>" * depth + "</w:body></w:document>")
    return _docx(doc.encode())


def docx_lying_sizes() -> bytes:
    """A document.xml of 30 MB whose zip headers claim 100 bytes."""
    real = _docx(None, stream_mb=30)
    # patch the sizes in the local header and central directory of word/document.xml
    out = bytearray(real)
    name = b"word/document.xml"
    i = out.find(b"PK\x03\x04")
    while i != -1:
        n = int.from_bytes(out[i + 26:i + 28], "little")
        if out[i + 30:i + 30 + n] == name:
            out[i + 22:i + 26] = (100).to_bytes(4, "little")
        i = out.find(b"PK\x03\x04", i + 4)
    i = out.find(b"PK\x01\x02")
    while i != -1:
        n = int.from_bytes(out[i + 28:i + 30], "little")
        if out[i + 46:i + 46 + n] == name:
            out[i + 24:i + 28] = (100).to_bytes(4, "little")
        i = out.find(b"PK\x01\x02", i + 4)
    return bytes(out)


# --- the cases --------------------------------------------------------------------------------------

def _cpu_stalls() -> list[Case]:
    c = "cpu_stall"
    pgp = b"-----BEGIN PGP MESSAGE-----\r\n" * (560 * 1024 // 29)
    pgp_signed = b"-----BEGIN PGP SIGNED MESSAGE-----\r\nHash: SHA256\r\n\r\n" * (560 * 1024 // 52)
    unclosed_a = "<html><body>" + "<a " * 34_000 + "Navn: Karen Lund"
    deep_div = "<html><body>" + "<div>" * 60_000 + "Navn: Karen Lund" + "</div>" * 60_000
    deep_table = "<table><tr><td>" * 15_000 + "CPR: 120385-1233"
    many_cells = "<table><tr>" + "<td>Navn</td><td>x</td>" * 60_000 + "</tr></table>"
    unclosed_attr = '<p><a href="' + "x" * 400_000
    unclosed_comment = "<p>Hej</p><!--" + "<td>Navn</td>" * 40_000
    boundary_lines = b"--b\r\n\r\n" * 600_000
    big_tree = head(ctype='multipart/mixed; boundary="b"', cte="") + boundary_lines + b"--b--\r\n"
    tiny = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(5000))
    tiny_parts = head(ctype='multipart/mixed; boundary="b"', cte="") + tiny + b"--b--\r\n"
    under = b"".join(b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nNavn: Karen Lund " + str(i).encode()
                     + b"\r\n" for i in range(480))
    under_limit = head(ctype='multipart/mixed; boundary="b"', cte="") + under + b"--b--\r\n"
    nested = "".join(f'--n{i}\r\nContent-Type: multipart/mixed; boundary="n{i + 1}"\r\n\r\n' for i in range(190))
    deep_multipart = (head(ctype='multipart/mixed; boundary="n0"', cte="") + nested.encode()
                      + b"--n190\r\nContent-Type: text/plain\r\n\r\n" + BODY.encode() + b"\r\n--n190--\r\n")
    fwd_block = ("Fra: Mette Sørensen <mette.soerensen@aalborg.dk>\nSendt: 17. november 2025 10:00\n"
                 "Til: socialmedicin@rn.dk\nEmne: VS: Henvisning\n\n")
    return [
        Case("pgp_begin_560k", head() + pgp, c, UNREADABLE, note="560 KB of BEGIN PGP lines, no END"),
        Case("pgp_begin_in_html", head(ctype='text/html; charset="utf-8"') + b"<p>" + pgp.replace(b"\r\n", b"<br>\r\n"), c, UNREADABLE),
        Case("pgp_signed_begin_560k", head() + pgp_signed, c, UNREADABLE),
        Case("pgp_begin_b64_part", mixed([text_part(base64.encodebytes(pgp).replace(b"\n", b"\r\n"), cte="base64"),
                                          pdf_part()]), c, UNREADABLE),
        Case("html_unclosed_a_100k", head(ctype='text/html; charset="utf-8"') + unclosed_a.encode(), c),
        Case("html_deep_div_60k", head(ctype='text/html; charset="utf-8"') + deep_div.encode(), c),
        Case("html_deep_table_15k", mixed([text_part(deep_table, 'text/html; charset="utf-8"'), pdf_part()]), c),
        Case("html_60k_cells", mixed([text_part(many_cells, 'text/html; charset="utf-8"'), pdf_part()]), c),
        Case("html_unclosed_attribute", head(ctype='text/html; charset="utf-8"') + unclosed_attr.encode(), c),
        Case("html_unclosed_comment", head(ctype='text/html; charset="utf-8"') + unclosed_comment.encode(), c),
        Case("mime_600k_parts", big_tree, c, UNREADABLE, note="600,000 empty parts from one boundary"),
        Case("mime_5000_tiny_parts", tiny_parts, c, UNREADABLE),
        Case("mime_480_text_parts", under_limit, c),
        Case("mime_nested_190_deep", deep_multipart, c),
        Case("text_navn_label_50k", head() + ("Navn: " * 50_000 + "\n" + BODY).encode(), c),
        Case("text_digits_300k", head() + ("1" * 300_000 + "\n" + BODY_NO_CPR).encode(), c),
        Case("text_cpr_prefix_40k", head() + ("120385-" * 40_000 + "\n" + BODY_NO_CPR).encode(), c),
        Case("text_spaced_digits", head() + ("12 " * 100_000 + "\n" + BODY_NO_CPR).encode(), c),
        Case("text_quoted_100k_lines", head() + (BODY + "> Navn: Karen Lund\n" * 100_000).encode(), c),
        Case("text_forward_headers_8k", head(subject="VS: Henvisning") + (fwd_block * 8_000 + BODY).encode(), c),
        Case("text_signature_marks_50k", head() + (BODY + "-- \nMette\n" * 50_000).encode(), c),
        Case("text_negations_50k", head() + (BODY + "ikke " * 50_000 + "Klinisk Funktion\n").encode(), c),
        Case("text_one_line_1mb", head() + ("Navn Karen Lund ønskes belyst " * 35_000).encode(), c),
        Case("text_combining_marks", head() + (BODY + "a\u0301\u0302\u0303" * 80_000).encode(), c),
    ]


def _memory_bombs() -> list[Case]:
    c = "memory_bomb"
    big_subject = "Henvisning " + "Karen Lund psykologisk undersoegelse " * 6_700  # ~250 KB, under the 256 KiB header cap
    re_subject = "Re: " * 60_000 + "Henvisning"
    words = " ".join("=?utf-8?q?=C3=A6?=" for _ in range(24_000))
    inner = (f"From: Mette <mette@aalborg.dk>\r\nSubject: {words}\r\nContent-Type: text/plain\r\n\r\n"
             + BODY.replace("\n", "\r\n")).encode()
    ew_embedded = mixed([b"Content-Type: text/plain; charset=utf-8\r\n\r\nSe den videresendte henvisning.",
                         b"Content-Type: message/rfc822\r\n\r\n" + inner])
    ew_filename = mixed([text_part(BODY), f'Content-Type: application/pdf\r\nContent-Disposition: attachment; filename="{words}"\r\n'
                         f"Content-Transfer-Encoding: base64\r\n\r\n".encode() + base64.b64encode(PDF)])
    ew_ctype_name = mixed([text_part(BODY), f'Content-Type: application/pdf; name="{words}"\r\n'
                           f"Content-Transfer-Encoding: base64\r\n\r\n".encode() + base64.b64encode(PDF)])
    fold_top = "Subject: Henvisning" + "\r\n x" * 60_000
    folded = (head(subject="Henvisning", extra="").replace(b"Subject: Henvisning\r\n", fold_top.encode() + b"\r\n")
              + BODY.encode())
    part_fold = b"Content-Type: text/plain;\r\n charset=utf-8" + b";\r\n x=y" * 400_000 + b"\r\n\r\n" + BODY.encode()
    zeros = base64.encodebytes(b"\0" * (6 << 20)).replace(b"\n", b"\r\n")
    zeros_text = base64.encodebytes(b"\0" * (3 << 20)).replace(b"\n", b"\r\n")
    many_headers = "".join(f"Received: from relay{i}.aalborg.dk by mx.rn.dk\n" for i in range(5_000))
    refs = " ".join(f"<r{i}@aalborg.dk>" for i in range(10_000))
    return [
        Case("subject_250k", head(subject=big_subject) + BODY.encode(), c),
        Case("subject_re_60k", head(subject=re_subject) + BODY.encode(), c),
        Case("part_header_24k_encoded_words_embedded", ew_embedded, c),
        Case("filename_24k_encoded_words", ew_filename, c),
        Case("content_type_name_24k_encoded_words", ew_ctype_name, c),
        Case("subject_folded_60k", folded, c),
        Case("part_header_folded_400k", mixed([part_fold, pdf_part()]), c),
        Case("base64_zeros_6mb", mixed([text_part(BODY), b"Content-Type: application/octet-stream\r\nContent-Disposition: "
                                        b"attachment; filename=zeros.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n" + zeros]), c),
        Case("base64_zeros_text_3mb", mixed([text_part(zeros_text, cte="base64"), pdf_part()]), c),
        Case("qp_nul_text", mixed([text_part(b"=00" * 600_000, cte="quoted-printable"), pdf_part()]), c),
        Case("to_8000_addresses", head(extra="") .replace(b"To: socialmedicin@rn.dk", ("To: " + ", ".join(
            f"Person {i} <p{i}@aalborg.dk>" for i in range(8_000))).encode()) + BODY.encode(), c),
        Case("from_nested_comments", head(from_="Mette " + "(" * 5_000 + "x" + ")" * 5_000 + " <mette@aalborg.dk>")
             + BODY.encode(), c),
        Case("subject_200k_encoded_words", head(subject=" ".join("=?utf-8?q?Henvisning=C3=A6?=" for _ in range(7_000)))
             + BODY.encode(), c),
        Case("from_7000_encoded_words", head(from_=" ".join("=?utf-8?q?Mette=C3=A6?=" for _ in range(7_000))
                                             + " <mette.soerensen@aalborg.dk>") + BODY.encode(), c),
        Case("reply_to_8000_addresses", head(extra="Reply-To: " + ", ".join(f"p{i}@aalborg.dk" for i in range(8_000)))
             + BODY.encode(), c),
        Case("received_5000", head(extra=many_headers) + BODY.encode(), c),
        Case("references_10k", head(extra=f"References: {refs}\nIn-Reply-To: <r1@aalborg.dk>") + BODY.encode(), c),
        Case("header_block_300k", head(extra="".join(f"X-Pad-{i}: {'p' * 60}\n" for i in range(4_500))) + BODY.encode(), c,
             manual_reasons=frozenset({"header_too_large"})),
    ]


# Every separator class a CPR number may be written with, for S2 = 071179-4321.
def _spellings(n: str) -> dict[str, str]:
    d, s = n[:6], n[6:]
    fw = str.maketrans("0123456789-", "０１２３４５６７８９－")
    return {
        "en_dash": f"{d}\u2013{s}", "em_dash": f"{d}\u2014{s}", "nb_hyphen": f"{d}\u2011{s}",
        "minus": f"{d}\u2212{s}", "figure_space": f"{d}\u2007{s}", "nbsp": f"{d}\u00a0{s}",
        "thin_space": f"{d}\u2009{s}", "dots": f"{d[:2]}.{d[2:4]}.{d[4:]}-{s}",
        "fullwidth": f"{d}-{s}".translate(fw), "zwj": f"{d[:4]}\u200d{d[4:]}-{s}",
        "soft_hyphen": f"{d}\u00ad{s}", "spaced_date": f"{d[:2]} {d[2:4]} {d[4:]} {s}",
        "spaced_dash": f"{d} - {s}", "hyphen_u2010": f"{d}\u2010{s}", "slash": f"{d}/{s}",
        "fullwidth_space": f"{d}\u3000{s}", "digits_spaced_out": " ".join(d) + " - " + " ".join(s),
        "dots_full_year": f"{d[:2]}.{d[2:4]}.19{d[4:]}-{s}", "pairs": " ".join(n[i:i + 2] for i in range(0, 10, 2)),
        "arabic_indic": f"{d}-{s}".translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")),
        "math_bold": "".join(chr(0x1D7CE + int(ch)) if ch.isdigit() else ch for ch in f"{d}-{s}"),
    }


def _cpr_leaks() -> list[Case]:
    c = "cpr_leak"
    out: list[Case] = []
    for kind, cpr in _spellings(S2).items():  # in the subject (the reply echoes the subject)
        out.append(Case(f"cpr_subject_{kind}", mixed([text_part(BODY_NO_CPR), pdf_part()],
                                                     subject=_enc(f"Henvisning: Karen Lund {cpr}")), c))
    for kind in ("en_dash", "nb_hyphen", "fullwidth", "zwj", "dots", "figure_space"):  # in the body
        cpr = _spellings(S3)[kind]
        out.append(Case(f"cpr_body_{kind}", mixed([text_part(BODY.replace("120385-1233", cpr)), pdf_part()]), c))
    for kind in ("en_dash", "thin_space", "nbsp", "minus"):  # in the From display name
        cpr = _spellings(S4)[kind]
        out.append(Case(f"cpr_from_name_{kind}", mixed([text_part(BODY), pdf_part()],
                                                       from_=_enc_addr(f"Karen Lund {cpr}", "mette.soerensen@aalborg.dk")), c))
    for kind in ("em_dash", "fullwidth", "plain"):  # in attachment names
        cpr = _spellings(S5).get(kind, f"{S5[:6]}-{S5[6:]}")
        out.append(Case(f"cpr_attachment_name_{kind}", mixed([text_part(BODY), pdf_part(f"Journal {cpr}.pdf")]), c))
    # name line with a CPR glued on, HTML splitting the number with tags and entities
    out.append(Case("cpr_in_name_line", mixed([text_part(BODY.replace("Navn: Karen Lund", f"Navn: Karen Lund {_spellings(S2)['en_dash']}")
                                                          .replace("CPR: 120385-1233\n", "")), pdf_part()]), c))
    html = ("<table><tr><td>Navn</td><td>Karen Lund</td></tr><tr><td>CPR</td><td>0711<span>79</span>&#8211;4321</td></tr>"
            "</table><p>Problemstilling: Det ønskes belyst, hvordan borgerens smerter påvirker arbejdsevnen.</p>"
            "<p>Henvisning til psykologisk undersøgelse.</p>")
    out.append(Case("cpr_html_split_entity", mixed([text_part(html, 'text/html; charset="utf-8"'), pdf_part()]), c))
    out.append(Case("cpr_message_id", mixed([text_part(BODY), pdf_part()]).replace(
        b"Message-ID: <adv-", b"Message-ID: <" + S2.encode() + b"-adv-", 1), c, note="a CPR in the Message-ID"))
    return out


def _enc(s: str) -> str:
    """A header value as RFC 2047 (UTF-8, base64) when it is not ASCII."""
    if s.isascii():
        return s
    return "=?utf-8?b?" + base64.b64encode(s.encode()).decode() + "?="


def _enc_addr(name: str, addr: str) -> str:
    return f"{_enc(name)} <{addr}>" if not name.isascii() else f'"{name}" <{addr}>'


def _injections() -> list[Case]:
    c = "reply_injection"
    body = [text_part(BODY), pdf_part()]
    ew = lambda s: "=?utf-8?b?" + base64.b64encode(s.encode()).decode() + "?="  # noqa: E731
    q = lambda s: "=?utf-8?q?" + "".join(f"={b:02X}" for b in s.encode()) + "?="  # noqa: E731
    froms = {
        "from_url_name": '"Se sagen her: https://evil.example/login" <mette.soerensen@aalborg.dk>',
        "from_encoded_url": f"{ew('Karen Lund https://evil.example/x')} <mette.soerensen@aalborg.dk>",
        "from_encoded_address": f"{ew('Skriv til attacker@evil.example')} <mette.soerensen@aalborg.dk>",
        "from_encoded_crlf_bcc": f"{q('Mette Sørensen' + chr(13) + chr(10) + 'Bcc: victim@evil.example')} <mette.soerensen@aalborg.dk>",
        "from_bidi_name": f"{ew('Mette Sørensen' + chr(0x202E) + 'fdp.exe')} <mette.soerensen@aalborg.dk>",
        "from_www_name": '"www.phish.example Mette" <mette.soerensen@aalborg.dk>',
        "from_fullwidth_at": f"{ew('attacker＠evil.example')} <mette.soerensen@aalborg.dk>",
        "from_name_looks_like_address": '"mette.soerensen@aalborg.dk" <mette.soerensen@aalborg.dk>',
        "from_name_domain_only": '"evil.example" <mette.soerensen@aalborg.dk>',
        "from_control_chars": f"{ew('Mette' + chr(7) + chr(27) + '[31m Sørensen')} <mette.soerensen@aalborg.dk>",
    }
    subjects = {
        "subject_url": "Henvisning - se https://evil.example/login?id=1",
        "subject_address": "Henvisning fra attacker@evil.example",
        "subject_www": "Henvisning www.phish.example",
        "subject_domain": "Henvisning evil.example.com Karen",
        "subject_controls": ew("Henvisning\x07\x1b[31m\x08 Karen\x00 Lund"),
        "subject_bidi": ew("Henvisning \u202egnp.exe\u202c Karen"),
        "subject_crlf_encoded": q("Henvisning\r\nBcc: victim@evil.example\r\n\r\nhttps://evil.example"),
        "subject_zero_width_url": ew("Henvisning h\u200bttps://evil\u200b.example"),
        "subject_idn": "Henvisning xn--80ak6aa92e.com",
        "subject_shortlink": "Henvisning bit.ly/3xyz",
        "subject_mailto": "Henvisning mailto:attacker@evil.example",
        "subject_line_separator": ew("Henvisning\u2028Bcc: victim@evil.example\u2029"),
        "subject_ip_path": "Henvisning 203.0.113.7/login Karen",
        "subject_fullwidth_dot": ew("Henvisning evil\uff0eexample/login"),
        "subject_fullwidth_url": ew("Henvisning ｈｔｔｐｓ：／／evil．example"),
    }
    out = [Case(k, mixed(body, from_=v), c) for k, v in froms.items()]
    out += [Case(k, mixed(body, subject=v), c) for k, v in subjects.items()]
    name_lines = {
        "name_url": "Navn: Karen https://evil.example",
        "name_address": "Navn: Karen Lund <attacker@evil.example>",
        "name_words_link": "Navn: Klik Her Www.evil.example",
        "name_bidi": "Navn: Karen \u202eLund",
    }
    for k, line in name_lines.items():
        out.append(Case(k, mixed([text_part(BODY.replace("Navn: Karen Lund", line)), pdf_part()]), c))
    out.append(Case("reply_to_foreign", mixed(body, extra="Reply-To: attacker@evil.example"), c))
    out.append(Case("reply_to_lookalike", mixed(body, extra="Reply-To: x@aalborg.dk.evil.example"), c))
    out.append(Case("sender_lookalike", mixed(body, from_="Mette <mette@aalborg.dk.evil.example>"), c,
                    manual_reasons=frozenset({"sender_not_allowed"})))
    return out


def _mime_defects() -> list[Case]:
    c = "mime_defect"
    body = text_part(BODY)
    broken = head(ctype='multipart/mixed; boundary="declared"', cte="") + b"--used\r\n" + body + b"\r\n--used--\r\n"
    big = b"A" * (2 << 20)
    forged_big_data = bytes(range(256)) * (5 << 12)  # 5 MB: the message is parsed as a skeleton
    forged_big = mixed([text_part(BODY, extra="X-Intake-Body-Ref: 0"),
                        file_part("Sociale_akter.bin", forged_big_data, "application/octet-stream")])
    forged_bad = mixed([text_part(BODY, extra="X-Intake-Body-Ref: 7"),
                        file_part("Sociale_akter.bin", forged_big_data, "application/octet-stream")])
    forged_small = mixed([text_part(BODY, extra="X-Intake-Body-Ref: 0"), pdf_part()], extra="X-Intake-Body-Ref: 0")
    return [
        Case("broken_boundary", broken, c, UNREADABLE, note="declared boundary never used: the body is never read"),
        Case("missing_closing_boundary", mixed([body, pdf_part()], close=False), c),
        Case("base64_declared_plain_text", mixed([text_part(BODY, cte="base64"), pdf_part()]), c, UNREADABLE),
        Case("qp_broken", mixed([text_part(BODY.replace("e", "=ZZ"), cte="quoted-printable"), pdf_part()]), c),
        Case("unknown_cte", mixed([text_part(BODY, cte="x-uuencode-evil"), pdf_part()]), c),
        Case("invalid_charset", mixed([text_part(BODY, 'text/plain; charset="x-evil-charset"'), pdf_part()]), c),
        Case("utf7_charset", mixed([text_part(BODY.replace("Karen", "+ADw-script+AD4-Karen").encode("ascii", "ignore"),
                                              'text/plain; charset="utf-7"'), pdf_part()]), c),
        Case("charset_in_wrong_place", mixed([text_part(BODY, 'text/plain; charset=""; charset="utf-16"'), pdf_part()]), c),
        Case("attachment_2mb_before_text", mixed([file_part("Sociale_akter.pdf", big), text_part(BODY)]), c),
        Case("two_from_headers", mixed([body, pdf_part()], extra="From: Other <attacker@evil.example>"), c,
             manual_reasons=frozenset({"sender_ambiguous", "sender_not_allowed"})),
        Case("from_two_addresses", mixed([body, pdf_part()], from_="Mette <mette@aalborg.dk>, Eve <eve@evil.example>"), c,
             manual_reasons=frozenset({"sender_ambiguous", "sender_not_allowed"})),
        Case("from_group_syntax", mixed([body, pdf_part()], from_="Team: mette@aalborg.dk, eve@evil.example;"), c,
             manual_reasons=frozenset({"sender_ambiguous", "sender_not_allowed"})),
        Case("forged_body_ref_small", forged_small, c),
        Case("forged_body_ref_big", forged_big, c, checks={"sha256": {"Sociale_akter.bin": hashlib.sha256(forged_big_data).hexdigest()}},
             note="an incoming X-Intake-Body-Ref on a part of a message parsed as a skeleton"),
        Case("forged_body_ref_out_of_range", forged_bad, c,
             checks={"sha256": {"Sociale_akter.bin": hashlib.sha256(forged_big_data).hexdigest()}}),
        Case("multipart_no_boundary_param", head(ctype="multipart/mixed", cte="") + body, c, UNREADABLE),
        Case("boundary_regex_chars", mixed([body, pdf_part()], boundary="((a+)+)+$.*[x"), c),
        Case("nested_rfc822_200", _nested_rfc822(200), c),
        Case("nested_rfc822_1500", _nested_rfc822(1500), c),
        Case("encrypted_no_key", head(ctype='multipart/encrypted; protocol="application/pgp-encrypted"; boundary="e"', cte="")
             + b"--e\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n--e\r\nContent-Type: application/octet-stream\r\n\r\n"
               b"-----BEGIN PGP MESSAGE-----\r\n\r\nhQEMA0xxxx\r\n-----END PGP MESSAGE-----\r\n--e--\r\n", c, UNREADABLE),
    ]


def _nested_rfc822(depth: int) -> bytes:
    inner = (b"From: Mette <mette@aalborg.dk>\r\nSubject: Henvisning\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
             + BODY.replace("\n", "\r\n").encode())
    for i in range(depth):
        inner = (f"From: Mette <mette@aalborg.dk>\r\nSubject: Fwd {i}\r\nContent-Type: message/rfc822\r\n\r\n").encode() + inner
    return head(subject="VS: Henvisning", ctype="message/rfc822", cte="") + inner


def _garbage() -> list[Case]:
    c = "garbage"
    rnd = random.Random(9)
    return [
        Case("empty", b"", c, manual_reasons=frozenset({"empty"})),
        Case("blank_lines", b"\r\n\r\n\r\n", c, manual_reasons=frozenset({"empty"})),
        Case("random_64k", bytes(rnd.getrandbits(8) for _ in range(65_536)), c, UNREADABLE),
        Case("random_printable", "".join(rnd.choice("abc:; \r\n=?") for _ in range(50_000)).encode(), c, UNREADABLE),
        Case("only_headers", head().rstrip(b"\r\n"), c, UNREADABLE),
        Case("headers_then_nothing", head(), c, UNREADABLE),
        Case("nul_in_body", head() + BODY.encode().replace(b"Karen", b"Ka\0ren") + b"\0" * 10_000, c),
        Case("nul_in_headers", head(subject="Henvis\0ning\0 Karen").replace(b"From: Mette", b"From: Me\0tte") + BODY.encode(), c),
        Case("eight_bit_headers_utf8", head(subject="Henvisning Åse Nørby", raw8=True) + BODY.encode(), c),
        Case("eight_bit_headers_latin1", head(subject="Henvisning Åse Nørby", raw8=True).decode().encode("latin-1")
             + BODY.encode("latin-1"), c),
        Case("long_line_2mb", head() + b"x" * (2 << 20) + b"\r\n" + BODY.encode(), c),
        Case("long_header_line_200k", head(subject="Henvisning " + "x" * 200_000) + BODY.encode(), c),
        Case("bare_cr_lines", head().replace(b"\r\n", b"\r") + BODY.replace("\n", "\r").encode(), c),
        Case("lf_only", head().replace(b"\r\n", b"\n") + BODY.encode(), c),
        Case("bom_first", b"\xef\xbb\xbf" + head() + BODY.encode(), c),
        Case("png_bytes", b"\x89PNG\r\n\x1a\n" + bytes(rnd.getrandbits(8) for _ in range(4000)), c, UNREADABLE),
        Case("mbox_from_line", b"From mette@aalborg.dk Mon Nov 17 10:00:00 2025\r\n" + head() + BODY.encode(), c),
        Case("no_headers_only_body", BODY.encode(), c, UNREADABLE),
    ]


def _hostile_attachments() -> list[Case]:
    c = "hostile_attachment"
    pointer = BODY_NO_CPR.replace("Navn: Karen Lund\n", "").replace(
        "Problemstilling:", "Se vedhæftede henvisningsskema.\n\nBemærk:")
    docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    files = [
        ("pdf_truncated", "Henvisningsskema.pdf", pdf_truncated(), "application/pdf"),
        ("pdf_flate_bomb", "Henvisningsskema.pdf", pdf_flate_bomb(), "application/pdf"),
        ("pdf_5000_pages", "Henvisningsskema.pdf", pdf_many_pages(), "application/pdf"),
        ("pdf_page_tree_cycle", "Henvisningsskema.pdf", pdf_page_tree_cycle(), "application/pdf"),
        ("pdf_xref_loop", "Henvisningsskema.pdf", pdf_xref_loop(), "application/pdf"),
        ("pdf_heavy_text", "Henvisningsskema.pdf", pdf_heavy_text(), "application/pdf"),
        ("pdf_not_a_pdf", "Henvisningsskema.pdf", b"MZ\x90\x00" + b"\0" * 2000, "application/pdf"),
        ("docx_zip_bomb", "Henvisningsskema.docx", docx_zip_bomb(), docx),
        ("docx_3000_entries", "Henvisningsskema.docx", docx_many_entries(), docx),
        ("docx_billion_laughs", "Henvisningsskema.docx", docx_billion_laughs(), docx),
        ("docx_deep_xml", "Henvisningsskema.docx", docx_deep_xml(), docx),
        ("docx_lying_sizes", "Henvisningsskema.docx", docx_lying_sizes(), docx),
        ("docx_not_a_zip", "Henvisningsskema.docx", b"PK\x03\x04" + b"\xff" * 3000, docx),
    ]
    # The text points to the attached form and lacks the items: a form that cannot be read means
    # a person looks (uncertain), never a "missing items" reply.
    return [Case(name, mixed([text_part(pointer), file_part(fname, data, ctype)]), c, frozenset({"manual"}))
            for name, fname, data, ctype in files]


@lru_cache(maxsize=1)
def cases() -> tuple[Case, ...]:
    out = [*_cpu_stalls(), *_memory_bombs(), *_cpr_leaks(), *_injections(), *_mime_defects(), *_garbage(),
           *_hostile_attachments()]
    names = [x.name for x in out]
    assert len(names) == len(set(names)), "case names must be unique"
    return tuple(out)


def build() -> list[tuple[str, bytes, str]]:
    return [(x.name, x.raw, x.cls) for x in cases()]


if __name__ == "__main__":  # a quick look: python -m tests.adversarial
    import collections
    import time

    t0 = time.monotonic()
    built = build()
    by = collections.Counter(cls for _n, _r, cls in built)
    print(f"{len(built)} messages, {sum(len(r) for _n, r, _c in built) / 1e6:.1f} MB, built in {time.monotonic() - t0:.1f} s")
    for cls, n in sorted(by.items()):
        print(f"  {cls:20} {n}")
