"""Generated and mutated mail for the property tests (tests/test_properties.py) and the property
benchmark (bench/bench_properties.py), and the properties themselves.

Messages are built from hypothesis strategies: headers (From with and without display names,
allowed and disallowed domains, encoded words, long folded and duplicate fields, garbage bytes),
MIME trees (nested multiparts, alternative HTML/plain, PDF/DOCX-looking attachments, absent or
wrong boundaries, wrong Content-Transfer-Encoding), charsets (utf-8, iso-8859-1, windows-1252,
utf-16, bogus names, mis-declared), encodings (base64, quoted-printable, 8bit, broken base64)
and text with Danish referral content (names, labels, examination words from config/rules.toml,
CPR numbers in every spelling intake/core/cpr.py reads or masks). Realistic seeds (the corpus
in tests/corpus, tests/mailfactory.py) and generated messages are then mutated: byte flips,
cuts, insertions, header drops and duplicates, part reordering, truncation, re-encoding.

`check(raw)` runs the in-process triage (built as `intake.edges.worker.triager` builds it when
`[triage.limits] worker = false`) and returns the properties that failed:
- no exception escapes the triage, and none is caught inside it as `internal_error`;
- no reply subject or body holds a CPR number in any form (the masker's own detectors, and an
  independent digit-run check against the numbers in the input);
- a reply goes only to the message's From (or allowed Reply-To) address, at an allowed
  municipal domain of the settings, never to our own address;
- the same bytes give the same decision, reason, missing list and reply a second time.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import io
import quopri
import re
import tomllib
import unicodedata
import zipfile
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.parser import HeaderParser
from email import policy as email_policy
from functools import lru_cache
from pathlib import Path

from hypothesis import strategies as st

from intake.config import load_settings
from intake.core import cpr as cprmod
from intake.core.textnorm import normalize
from intake.edges.worker import triager

ROOT = Path(__file__).resolve().parent.parent
TODAY = dt.date(2026, 11, 22)
DECISIONS = ("accepted", "incomplete", "redirect", "manual", "ignored")


# --- the triage under test, as the worker's in-process path builds it --------------------------

@lru_cache(maxsize=1)
def settings():
    s = load_settings(None)
    s.triage.limits.worker = False
    return s


@lru_cache(maxsize=1)
def decide():
    """`intake.edges.worker.triager` with `worker = false`: the pure function in this process."""
    return triager(settings())


# --- strategies are built once (hypothesis validates each new strategy object) -------------------

_CACHE: dict = {}


def S(fn, *args):  # noqa: ANN001, ANN201, N802
    """`fn(*args)`, one strategy object per distinct call."""
    key = (fn, *args)
    if key not in _CACHE:
        _CACHE[key] = fn(*args)
    return _CACHE[key]


def _sf(seq):  # noqa: ANN001, ANN202
    return S(st.sampled_from, tuple(seq))


def _int(a: int, b: int):  # noqa: ANN202
    return S(st.integers, a, b)


def _lists(elements, lo: int, hi: int):  # noqa: ANN001, ANN202
    return st.lists(elements, min_size=lo, max_size=hi)


_BOOL = st.booleans()


# --- vocabulary ----------------------------------------------------------------------------------

ALLOWED_DOMAINS = ("aalborg.dk", "jobcenter.aalborg.dk", "AALBORG.DK", "bronderslev.dk", "thisted.dk",
                   "laesoe.dk", "sikkermail.hjoerring.dk", "mors.dk")
DISALLOWED_DOMAINS = ("evil.example", "aalborg.dk.evil.example", "evilaalborg.dk", "gmail.com", "rn.dk",
                      "aalborg.dk.", "aalborg-dk.example", "xn--lborg-qra.dk", "ålborg.dk", "aalborg.d k",
                      "kommune.dk", "[127.0.0.1]")
LOCALS = ("mette.soerensen", "sb12", "jobcenter", "Karen.Lund", "postmaster", "mailer-daemon", "noreply",
          "socialmedicin", "a+b", '"quoted local"', "søren")
DISPLAY = ("Mette Sørensen", "Sørensen, Mette", "Jobcenter Aalborg", "mette.soerensen@aalborg.dk",
           "evil@evil.example", "Karen Lund 120385-1233", "https://bit.ly/x", "Ole", "Dr. Åse Nørby",
           "Hans-Christian Øster", "Ψ", "\u202eevil", "Sagsbehandler (Aalborg)")
NAMES = ("Karen Lund", "Jens Peter Hansen", "Åse Nørby", "Mads Kristian Poulsen", "Fatima Yilmaz",
         "Hans-Christian Øster", "Ida Marie Bæk", "Ole Due", "Anne-Mette la Cour", "Søren Kierkegaard")
NAME_LABELS = ("Navn:", "Borger:", "Borgers navn:", "Klient:", "Navn på borger:", "Vedr.:", "Vedr. borger:",
               "Borgerens fulde navn:", "Patient:", "Navn og CPR:")
CPR_LABELS = ("CPR-nr.:", "CPR:", "CPR nr.", "Cpr-nummer:", "Personnummer:", "Person nr.:", "personnr:",
              "CPR-nr", "Fødselsdato og løbenummer:", "")
OTHER_NUMBERS = ("Tlf.: 20 12 34 56", "Tlf. 99 31 42 17", "KLE 27.12.04-G01-3-24", "EAN 5798000012345",
                 "Kontonr. 1234-1234567890", "Sagsnr. 2026-004711", "J.nr. 27.12.04-P20-1-26",
                 "CVR 29189420", "Mobil +45 20123456", "SME-2026-00042", "120385-XXXX", "CPR: 120385-xxxx",
                 "CPR: 320185-1234", "CPR: 1203851233 1203851233", "Dato 12.03.2026", "Tlf 1203851233")
PROBLEMS = (
    "Problemstilling: Det ønskes belyst, hvordan borgerens koncentrationsbesvær påvirker arbejdsevnen.",
    "Hvilken problemstilling ønskes belyst? Borgerens funktionsevne og prognose.",
    "Vi ønsker at få afklaret, om borgeren har en varig lidelse.",
    "Formålet er at afklare arbejdsevnen med fokus på smerter.",
    "Det ønskes vurderet, om der er behov for skånehensyn.",
)
FILLERS = (
    "Hej Socialmedicinsk Enhed", "Hermed henvisning.", "Sociale og lægelige akter er vedhæftet.",
    "Akterne eftersendes i morgen.", "Med venlig hilsen", "Mette Sørensen", "Jobcenter Aalborg",
    "Borgeren er i ressourceforløb.", "Sagen skal forelægges rehabiliteringsteamet.",
    "Vi trækker henvisningen tilbage.", "Tak for svaret.", "Henvisningen sendes via Mediconnect.",
    "Jeg har et spørgsmål til en tidligere henvisning.", "Se vedhæftede skema.",
    "-----Original Message-----", "> citeret tekst", "Fra: Karen <karen@aalborg.dk>",
    "---------- Forwarded message ---------", "Sendt fra min iPhone", "☒ Psykiatrisk speciallægeerklæring",
    "☐ Psykologisk undersøgelse", "[x] Socialmedicinsk", "Fortroligt", "Der foreligger en psykiatrisk erklæring fra 2022.",
    "Borgeren er tidligere vurderet af psykolog.", "    ", "\t", "æøå ÆØÅ é ü ß", "💡 emoji",
    "https://evil.example/login", "mailto:evil@evil.example",
)


@lru_cache(maxsize=1)
def examination_words() -> tuple[str, ...]:
    """Examination labels from config/rules.toml, and phrases its patterns read."""
    rules = tomllib.loads((ROOT / "config" / "rules.toml").read_text(encoding="utf-8"))
    labels = tuple(e["label"] for e in rules["examinations"].values())
    return labels + ("psykiatrisk undersøgelse", "psyk. 141", "5 psykologsamtaler", "neuropsykologisk undersøgelse",
                     "socialmedicinsk vurdering", "speciallæge i psykiatri", "psykologisk testning",
                     "støttende samtaler", "samtaleforløb hos psykolog")


# --- CPR numbers ----------------------------------------------------------------------------------

def _century_digit_options(year: int) -> list[int]:
    yy = year % 100
    if year < 2000:
        return [0, 1, 2, 3] + ([4, 9] if yy >= 37 else [])
    return ([4, 9] if yy <= 36 else []) + ([5, 6, 7, 8] if yy <= 57 else [])


@st.composite
def cpr_digits(draw) -> str:
    """A valid CPR number (a real date, the century digit right), 10 digits."""
    born = draw(S(st.dates, dt.date(1925, 1, 1), dt.date(2020, 12, 31)))
    s0 = draw(_sf(_century_digit_options(born.year)))
    rest = draw(_int(0, 999))
    return f"{born:%d%m%y}{s0}{rest:03d}"


FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
# Spellings: every separator class the reader (cpr._CANDIDATE) and the masker (cpr._SHAPED,
# cpr._SPREAD, after textnorm.normalize) know.
SPELLINGS = (
    "{dd}{mm}{yy}-{s}", "{dd}{mm}{yy}{s}", "{dd}{mm}{yy} {s}", "{dd}{mm}{yy} - {s}", "{dd}.{mm}.{yy}-{s}",
    "{dd}.{mm}.{yy} {s}", "{dd} {mm} {yy} {s}", "{dd}-{mm}-{yy}-{s}", "{dd}{mm}{yy}\u2013{s}",
    "{dd}{mm}{yy}\u2011{s}", "{dd}{mm}{yy}\u00a0{s}", "{dd}{mm}{yy}\u2007{s}", "{dd}{mm}{yy}.{s}",
    "{dd}{mm}{yy}/{s}", "{dd}{mm}{yy}_{s}", "{dd}{mm}{yy}\u200b-{s}", "{dd}/{mm}/{yy}-{s}",
    "{dd}{mm}{yy}\u2212{s}", "{dd}{mm}{yy}\u00ad-{s}", "{dd}{mm}{yy}\ufe63{s}",
)


@st.composite
def cpr_written(draw, digits: str | None = None) -> str:
    d = digits or draw(S(cpr_digits))
    how = draw(_int(0, len(SPELLINGS) + 1))
    if how == len(SPELLINGS):  # digit by digit
        sep = draw(_sf([" ", "  ", ".", " - "]))
        text = sep.join(d[:6]) + draw(_sf(["-", " ", " - "])) + sep.join(d[6:])
    elif how == len(SPELLINGS) + 1:  # with the century: DD.MM.YYYY-SSSS
        born = cprmod.birth_date(d)
        text = f"{d[:2]}.{d[2:4]}.{born.year if born else 19}{d[4:6] if not born else ''}-{d[6:]}"
    else:
        text = SPELLINGS[how].format(dd=d[:2], mm=d[2:4], yy=d[4:6], s=d[6:])
    if draw(_int(0, 5)) == 0:
        text = text.translate(FULLWIDTH)
    return text


# --- text -----------------------------------------------------------------------------------------

@st.composite
def referral_lines(draw) -> list[str]:
    """Lines of a referral (or something like one), in a random order, with pieces missing."""
    name = draw(_sf(NAMES))
    lines = []
    if draw(_BOOL):
        lines.append("Hej Socialmedicinsk Enhed")
    exam = draw(_sf(examination_words()))
    lines.append(draw(_sf([f"Hermed henvisning til {exam}.", f"Vi ønsker en {exam}.", exam,
                                       f"Henvisning: {exam}", f"Ønsket undersøgelse: {exam}"])))
    if draw(_int(0, 4)):
        lines.append(f"{draw(_sf(NAME_LABELS))} {name}")
    for _ in range(draw(_int(0, 3))):
        label = draw(_sf(CPR_LABELS))
        sep = draw(_sf([" ", "\n", "  ", "\t", ": "]))
        lines.append(f"{label}{sep}{draw(S(cpr_written))}".strip())
    if draw(_int(0, 3)):
        lines.append(draw(_sf(PROBLEMS)))
    for _ in range(draw(_int(0, 4))):
        lines.append(draw(S(_filler)))
    order = draw(st.permutations(range(len(lines)))) if draw(_int(0, 3)) == 0 else range(len(lines))
    return [lines[i] for i in order]


BIG_ONE_IN = 30  # one text in this many is long
BIG_MAX_REPEAT = 10_000  # up to ~340 KB of text (the read cap is 300,000 characters)


def _filler():  # noqa: ANN202
    return st.one_of(st.sampled_from(FILLERS), st.sampled_from(OTHER_NUMBERS), st.text(max_size=40))


@st.composite
def body_text(draw) -> str:
    lines = draw(S(referral_lines))
    nl = draw(_sf(["\n", "\r\n", "\n\n", "\r", " "]))
    text = nl.join(lines)
    if draw(_int(0, BIG_ONE_IN)) == 0:  # sizes: a long text (up to the read cap and past it)
        text += "\n" + "Lorem ipsum borgeren har smerter. " * draw(_int(100, BIG_MAX_REPEAT))
    return text


def html_of(text: str, variant: int) -> str:
    esc = text.replace("&", "&amp;").replace("<", "&lt;").replace("ø", "&oslash;" if variant % 2 else "&#248;")
    rows = "".join(f"<tr><td>{ln.partition(':')[0]}</td><td>{ln.partition(':')[2]}</td></tr>"
                   for ln in esc.splitlines() if ":" in ln)
    paras = "".join(f"<p>{ln}</p>" for ln in esc.splitlines())
    junk = ["", "<script>alert(1)</script>", "<!-- CPR 120385-1233 -->", "<style>p{}</style>", "<div><span>"][variant % 5]
    return f"<html><head><meta charset=utf-8></head><body>{junk}{paras}<table>{rows}</table><br></body></html>"


# --- MIME entities ------------------------------------------------------------------------------

CHARSETS = (  # (declared, actually used)
    ("utf-8", "utf-8"), ("iso-8859-1", "latin-1"), ("windows-1252", "cp1252"), ("utf-16", "utf-16"),
    ("UTF-8", "utf-8"), ("utf-8", "latin-1"), ("iso-8859-1", "utf-8"), ("bogus-charset", "utf-8"),
    (None, "utf-8"), ("us-ascii", "utf-8"), ('"utf-8"', "utf-8"), ("utf-7", "utf-7"), ("x-unknown", "cp1252"),
    ("utf-16le", "utf-16-le"), ("", "latin-1"),
)
ENCODINGS = ("8bit", "7bit", "base64", "quoted-printable", "binary", "broken-base64", "broken-qp",
             "lying-base64", "lying-qp", "x-uuencode", None, "BASE64")


def encode_body(data: bytes, how: str | None) -> tuple[str | None, bytes]:
    """(Content-Transfer-Encoding to declare, encoded body)."""
    if how in ("base64", "BASE64"):
        return how, base64.encodebytes(data)
    if how == "broken-base64":
        b = base64.encodebytes(data)
        cut = b[: max(0, len(b) * 2 // 3 - 1)]
        return "base64", cut + b"!!*=\n==AB" + b[len(cut):][:5]
    if how == "quoted-printable":
        return how, quopri.encodestring(data)
    if how == "broken-qp":
        return "quoted-printable", quopri.encodestring(data).replace(b"=", b"=Z", 3) + b"=\n=4"
    if how == "lying-base64":  # declared base64, sent as is
        return "base64", data
    if how == "lying-qp":  # declared 7bit, sent as quoted-printable
        return "7bit", quopri.encodestring(data)
    return how, data


@dataclass
class Entity:
    headers: list[tuple[str, str]]
    body: bytes = b""
    children: list["Entity"] = field(default_factory=list)
    boundary: str | None = None
    boundary_mode: str = "ok"  # ok | absent | wrong | unclosed | inner_text

    def serialize(self, nl: bytes = b"\r\n") -> bytes:
        head = b"".join(_header_bytes(k, v, nl) for k, v in self.headers)
        if not self.children:
            return head + nl + self.body
        b = (self.boundary or "b").encode("ascii", "replace")
        used = b"other-" + b if self.boundary_mode == "wrong" else b
        out = [head, nl, b"This is a multi-part message in MIME format." + nl]
        for c in self.children:
            out.append(b"--" + used + nl + c.serialize(nl) + nl)
        if self.boundary_mode != "unclosed":
            out.append(b"--" + used + b"--" + nl)
        return b"".join(out)


def _header_bytes(name: str, value: str, nl: bytes) -> bytes:
    try:
        v = value.encode("ascii")
    except UnicodeEncodeError:
        v = value.encode("utf-8", "surrogateescape")
    return name.encode("utf-8", "replace") + b": " + v.replace(b"\n", nl + b" ") + nl


@st.composite
def text_entity(draw, html: bool | None = None) -> Entity:
    text = draw(S(body_text))
    is_html = draw(_BOOL) if html is None else html
    if is_html:
        text = html_of(text, draw(_int(0, 9)))
    declared, actual = draw(_sf(CHARSETS))
    data = text.encode(actual, "replace")
    cte, payload = encode_body(data, draw(_sf(ENCODINGS)))
    ctype = "text/html" if is_html else draw(_sf(["text/plain", "text/plain", "TEXT/PLAIN", "text/enriched", "text"]))
    if declared is not None:
        ctype += f"; charset={declared}" if declared else "; charset="
    headers = [("Content-Type", ctype)]
    if cte:
        headers.append(("Content-Transfer-Encoding", cte))
    if draw(_int(0, 6)) == 0:
        headers.append(("Content-Disposition", draw(_sf(["inline", "attachment; filename=tekst.txt"]))))
    return Entity(headers, payload)


@lru_cache(maxsize=1)
def attachment_blobs() -> tuple[tuple[str, str, bytes], ...]:
    from tests.adversarial import _docx, _text_page_pdf
    from tests.mailfactory import PDF

    doc = ('<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
           "<w:body><w:p><w:r><w:t>Henvisningsskema</w:t></w:r></w:p><w:p><w:r><w:t>Navn: Karen Lund</w:t></w:r></w:p>"
           "<w:p><w:r><w:t>CPR: 120385-1233</w:t></w:r></w:p><w:p><w:r><w:t>☒ Psykiatrisk speciallægeerklæring"
           "</w:t></w:r></w:p></w:body></w:document>").encode()
    docx = _docx(doc)
    bare = io.BytesIO()
    with zipfile.ZipFile(bare, "w") as z:
        z.writestr("hello.txt", "not a document")
    return (
        ("Sociale_akter.pdf", "application/pdf", PDF),
        ("Henvisningsskema.pdf", "application/pdf", _text_page_pdf("Henvisningsskema Navn Karen Lund CPR 120385-1233")),
        ("Henvisningsskema.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", docx),
        ("Lægeerklæring 120385-1233.pdf", "application/pdf", PDF[:40]),
        ("akter.docx", "application/octet-stream", bare.getvalue()),
        ("scan.pdf", "application/pdf", b"%PDF-1.7\n" + bytes(range(256)) * 4),
        ("billede.png", "image/png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64),
        ("noter.txt", "text/plain", "Navn: Karen Lund\nCPR: 120385-1233\n".encode()),
        ("", "application/octet-stream", b"\x00\x01\x02"),
        ("=?utf-8?q?Akter_=C3=A6=C3=B8.pdf?=", "application/pdf", PDF),
    )


@st.composite
def attachment_entity(draw) -> Entity:
    name, ctype, data = draw(_sf(attachment_blobs()))
    if draw(_int(0, 4)) == 0:
        data = data[: draw(_int(0, len(data)))]
    cte, payload = encode_body(data, draw(_sf(["base64", "base64", "broken-base64", "8bit", "quoted-printable", None])))
    disp = draw(_sf(["attachment", "inline", None, "attachment; filename*=utf-8''Akter%20%C3%A6.pdf"]))
    headers = [("Content-Type", f'{ctype}; name="{name}"')]
    if disp is not None:
        headers.append(("Content-Disposition", disp if "filename" in disp else f'{disp}; filename="{name}"'))
    if cte:
        headers.append(("Content-Transfer-Encoding", cte))
    return Entity(headers, payload)


@st.composite
def forwarded_entity(draw) -> Entity:
    inner = draw(S(top_headers, 1))
    return Entity([("Content-Type", "message/rfc822")],
                  b"".join(_header_bytes(k, v, b"\r\n") for k, v in inner) + b"\r\n" + draw(S(body_text)).encode("utf-8"))


BOUNDARY_MODES = ("ok", "ok", "ok", "absent", "wrong", "unclosed", "inner_text")


@st.composite
def multipart_of(draw, children) -> Entity:
    kids = draw(S(_lists, children, 0, 4))
    subtype = draw(_sf(["mixed", "alternative", "related", "mixed", "signed", "report", "digest"]))
    mode = draw(_sf(BOUNDARY_MODES))
    boundary = draw(_sf(["=_b1", "----=_NextPart_000_0001", "b", "with space", "Karen Lund", "x" * 75,
                                     "æøå", "=?utf-8?q?x?="]))
    if mode == "inner_text" and kids:  # the boundary appears in a part's content
        kids[0].body = kids[0].body + b"\r\n--" + boundary.encode("utf-8") + b"\r\n"
    ctype = f"multipart/{subtype}"
    if mode != "absent":
        ctype += f'; boundary="{boundary}"' if draw(_BOOL) else f"; boundary={boundary}"
    return Entity([("Content-Type", ctype)], children=kids, boundary=boundary, boundary_mode=mode)


def mime_tree():
    leaves = st.one_of(text_entity(), text_entity(), attachment_entity(), forwarded_entity())
    return st.recursive(leaves, lambda children: multipart_of(children), max_leaves=6)


@st.composite
def common_tree(draw) -> Entity:
    """The common shapes (mixed with text or alternative and attachments), or anything."""
    shape = draw(_int(0, 3))
    if shape == 0:
        return draw(S(text_entity, False))
    if shape == 1:
        alt = Entity([("Content-Type", 'multipart/alternative; boundary="alt"')],
                     children=[draw(S(text_entity, False)), draw(S(text_entity, True))], boundary="alt")
        atts = draw(S(_lists, S(attachment_entity), 0, 3))
        return Entity([("Content-Type", 'multipart/mixed; boundary="mix"')], children=[alt, *atts], boundary="mix")
    if shape == 2:
        atts = draw(S(_lists, S(attachment_entity), 0, 3))
        return Entity([("Content-Type", 'multipart/mixed; boundary="mix"')],
                      children=[draw(S(text_entity)), *atts], boundary="mix")
    return draw(S(mime_tree))


# --- headers ----------------------------------------------------------------------------------------

def encoded_word(text: str, how: int) -> str:
    if how == 0:
        return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="
    if how == 1:
        return "=?utf-8?q?" + quopri.encodestring(text.encode(), header=True).decode().replace("\n", "") + "?="
    if how == 2:
        return "=?iso-8859-1?q?" + quopri.encodestring(text.encode("latin-1", "replace"), header=True).decode() + "?="
    if how == 3:
        return "=?bogus?b?" + base64.b64encode(text.encode()).decode() + "?="
    if how == 4:
        return "=?utf-8?b?" + base64.b64encode(text.encode()).decode()[:-3] + "?="  # broken
    return text  # raw (8-bit when not ASCII)


@st.composite
def address(draw, allowed_bias: int = 2) -> str:
    allowed = draw(_int(0, allowed_bias)) > 0
    domain = draw(_sf(ALLOWED_DOMAINS if allowed else DISALLOWED_DOMAINS))
    local = draw(_sf(LOCALS if draw(_int(0, 5)) == 0 else LOCALS[:4]))
    return f"{local}@{domain}"


FROM_FORMS = (2, 0, 3, 2, 4, 1, 2, 3, 5, 4, 6)  # 6 (two addresses) and 5 (a comment) rarer


@st.composite
def from_value(draw, allowed_bias: int = 2) -> str:
    addr = draw(S(address, allowed_bias))
    form = draw(_sf(FROM_FORMS))
    if form == 0:
        return addr
    if form == 1:
        return f"<{addr}>"
    name = draw(_sf(DISPLAY))
    if form in (2, 3) and not name.isascii():  # raw 8-bit names only in form 4 (see the report)
        name = encoded_word(name, 1)
    if form == 2:
        return f"{name} <{addr}>"
    if form == 3:
        return f'"{name}" <{addr}>' if name.isascii() and "=?" not in name else f"{name} <{addr}>"
    if form == 4:
        return f"{encoded_word(name, draw(_int(0, 5)))} <{addr}>"
    if form == 5:
        return f"{addr} ({name})"
    return f"{name} <{addr}>, {draw(S(address, allowed_bias))}"  # two addresses


@st.composite
def subject_value(draw) -> str:
    parts = [draw(_sf(["Henvisning", "SV: Henvisning", "Re: Fwd: henvisning", "Vedr.", "",
                                   "[SME-2026-00042]", "Henvisning modtaget [SME-2026-00042]: Henvisning"]))]
    if draw(_BOOL):
        parts.append(draw(_sf(NAMES)))
    if draw(_int(0, 2)) == 0:
        parts.append(draw(S(cpr_written)))
    if draw(_BOOL):
        parts.append(draw(_sf(examination_words())))
    if draw(_int(0, 5)) == 0:
        parts.append(draw(_sf(["https://evil.example/x", "www.bit.ly/a", "evil@evil.example", "\r\nBcc: x@evil.example"])))
    text = " ".join(parts)
    how = draw(_int(0, 8))
    if how <= 5:
        text = encoded_word(text, how) if not text.isascii() or how < 5 else text
    if draw(_int(0, 8)) == 0:  # long, folded
        text = " ".join([text] * draw(_int(2, 30)))
        text = "\n ".join(text[i:i + 70] for i in range(0, len(text), 70))
    return text


MACHINE_HEADERS = (("Auto-Submitted", "auto-replied"), ("Precedence", "bulk"), ("List-Id", "<x.example>"),
                   ("Return-Path", "<>"), ("X-Loop", "socialmedicin@rn.dk"), ("Auto-Submitted", "no"),
                   ("Precedence", "first-class"))
OTHER_HEADERS = (("In-Reply-To", "<our-reply@rn.dk>"), ("References", "<a@b> <c@d>"),
                 ("X-Mailer", "Microsoft Outlook 16.0"), ("X-Garbage", "\udcff\udcfe\udc80"), ("Subject", "Andet emne"),
                 ("Authentication-Results", "mx.rn.dk; dmarc=fail"), ("X-Long", "x" * 2000),
                 ("Content-Transfer-Encoding", "base64"), ("Content-Type", "text/plain; charset=utf-16"),
                 ("X-Folded", "a\n b\n\tc"), ("Bad Header Name", "x"), ("Message-ID", "<dup@aalborg.dk>"))


@st.composite
def top_headers(draw, allowed_bias: int = 5) -> list[tuple[str, str]]:
    h = [("From", draw(S(from_value, allowed_bias))), ("To", "socialmedicin@rn.dk"), ("Subject", draw(S(subject_value))),
         ("Date", draw(_sf(["Sun, 16 Nov 2025 08:00:00 +0000", "garbage date", "Mon, 32 Foo 2025 99:99:99",
                                        email.utils.formatdate(1763280000)]))),
         ("Message-ID", f"<prop-{draw(_int(0, 10**6))}@aalborg.dk>")]
    if draw(_BOOL):
        h.append(("MIME-Version", "1.0"))
    if draw(_int(0, 4)) == 0:
        h.append(("Reply-To", draw(S(from_value, 1))))
    for _ in range(draw(_int(0, 2))):
        kind = draw(_int(0, 9))
        if kind == 0:  # machine mail (ignored)
            h.append(draw(_sf(MACHINE_HEADERS)))
        elif kind == 1:  # a second sender field
            h.append((draw(_sf(["From", "Sender", "Cc", "Reply-To"])), draw(S(from_value, 1))))
        else:
            h.append(draw(_sf(OTHER_HEADERS)))
    return h


@st.composite
def generated(draw) -> bytes:
    """A whole message from the strategies (no seed)."""
    headers = draw(S(top_headers))
    tree = draw(S(common_tree))
    tree.headers = headers + tree.headers
    if draw(_int(0, 5)) == 0:  # headers in another order
        order = draw(st.permutations(range(len(tree.headers))))
        tree.headers = [tree.headers[i] for i in order]
    nl = draw(_sf([b"\r\n", b"\r\n", b"\n"]))
    return tree.serialize(nl)


# --- seeds -----------------------------------------------------------------------------------------

@lru_cache(maxsize=2)
def seeds(max_bytes: int = 120_000) -> tuple[bytes, ...]:
    """The corpus (tests/corpus, forms included) and tests/mailfactory messages."""
    from tests.corpus.corpus import load
    from tests.mailfactory import BODY, PDF, plain, referral

    out = [c.raw for c in load() if len(c.raw) <= max_bytes]
    out += [
        referral(), referral(charset="iso-8859-1"), referral(BODY, html="<table><tr><td>Navn</td><td>Karen Lund</td></tr></table>"),
        referral("", html="<p>Henvisning til psykiatrisk speciallægeerklæring</p><p>CPR: 120385-1233</p>"),
        referral(attachments=[]), referral(attachments=[("a.pdf", PDF, "application/pdf")] * 3),
        referral(from_="evil@evil.example"), referral(headers={"Reply-To": "other@thisted.dk"}),
        plain(BODY), plain(BODY.replace("120385-1233", "12.03.85 1233")),
    ]
    return tuple(out)


# --- mutations ----------------------------------------------------------------------------------------

TOKENS = (b"\r\n", b"\n\n", b"--", b"=?utf-8?b?", b"boundary=", b"Content-Type: multipart/mixed; boundary=x\r\n",
          b"\x00", b"\xff\xfe", b"=\n", b"<", b"&#", b"120385-1233", b"1 2 0 3 8 5 1 2 3 3", b"\xef\xbc\x91",
          b"Content-Transfer-Encoding: base64\r\n", b"From: evil@evil.example\r\n", b"\r\n\r\n", b"\xc3", b"?=",
          b"Reply-To: x@evil.example\r\n", b"charset=utf-16\r\n", b"\t", b"--mix--\r\n")
OPS = ("flip", "set", "delete", "insert", "duplicate", "truncate", "drop_header", "dup_header",
       "reorder_parts", "lf", "crlf", "latin1", "b64_body", "swap_cte")


def _split_head(raw: bytes) -> tuple[bytes, bytes, bytes]:
    m = re.search(rb"\r?\n\r?\n", raw)
    if not m:
        return raw, b"", b""
    return raw[: m.start()], raw[m.start(): m.end()], raw[m.end():]


def _fields(head: bytes) -> list[bytes]:
    """Header fields with their continuation lines."""
    out: list[bytes] = []
    for line in re.split(rb"(?<=\n)", head):
        if out and line[:1] in (b" ", b"\t"):
            out[-1] += line
        elif line:
            out.append(line)
    if out and not out[-1].endswith(b"\n"):
        out[-1] += b"\r\n"
    return out


def mutate(raw: bytes, ops: list[tuple[str, int, int, int]]) -> bytes:
    """Apply mutations; positions are taken modulo the current length."""
    b = bytearray(raw)
    for op, x, y, z in ops:
        n = len(b)
        if n == 0:
            b = bytearray(TOKENS[z % len(TOKENS)])
            continue
        i = x % n
        if op == "flip":
            b[i] ^= 1 << (y % 8)
        elif op == "set":
            b[i] = y % 256
        elif op == "delete":
            del b[i:i + 1 + y % 300]
        elif op == "insert":
            b[i:i] = TOKENS[z % len(TOKENS)]
        elif op == "duplicate":
            j = y % n
            b[i:i] = b[j:j + 1 + z % 500]
        elif op == "truncate":
            del b[max(1, i):]
        elif op in ("drop_header", "dup_header"):
            head, sep, rest = _split_head(bytes(b))
            fields = _fields(head)
            if fields:
                k = y % len(fields)
                if op == "drop_header":
                    del fields[k]
                else:
                    fields.insert(z % (len(fields) + 1), fields[k])
                joined = b"".join(fields)
                if sep and joined.endswith(b"\n"):
                    joined = joined[:-2] if joined.endswith(b"\r\n") else joined[:-1]
                b = bytearray(joined + sep + rest)
        elif op == "reorder_parts":
            m = re.search(rb'boundary="?([^";\r\n]+)"?', bytes(b), re.I)
            if m:
                delim = b"--" + m.group(1)
                pieces = bytes(b).split(delim)
                if len(pieces) > 3:
                    inner = pieces[1:-1]
                    j, k = y % len(inner), z % len(inner)
                    inner[j], inner[k] = inner[k], inner[j]
                    b = bytearray(delim.join([pieces[0], *inner, pieces[-1]]))
        elif op == "lf":
            b = bytearray(bytes(b).replace(b"\r\n", b"\n"))
        elif op == "crlf":
            b = bytearray(re.sub(rb"(?<!\r)\n", b"\r\n", bytes(b)))
        elif op == "latin1":  # re-encode the body: UTF-8 read, written as latin-1
            head, sep, rest = _split_head(bytes(b))
            rest = rest.decode("utf-8", "ignore").encode("latin-1", "replace")
            b = bytearray(head + sep + rest)
        elif op == "b64_body":  # re-encode the body as base64 (headers unchanged: may lie)
            head, sep, rest = _split_head(bytes(b))
            if sep:
                b = bytearray(head + b"\r\nContent-Transfer-Encoding: base64" + sep + base64.encodebytes(rest))
        elif op == "swap_cte":
            s = bytes(b)
            swaps = [(b"base64", b"quoted-printable"), (b"quoted-printable", b"base64"), (b"8bit", b"base64"),
                     (b"7bit", b"quoted-printable")]
            old, new = swaps[y % len(swaps)]
            b = bytearray(s.replace(old, new, 1 + z % 3))
    return bytes(b)


mutation_op = st.tuples(st.sampled_from(OPS), st.integers(0, 1 << 24), st.integers(0, 1 << 16), st.integers(0, 1 << 16))


def mutations(min_size: int = 0, max_size: int = 6):
    return st.lists(mutation_op, min_size=min_size, max_size=max_size)


def messages(max_seed_bytes: int = 120_000):
    """The whole mix: mutated seeds, generated messages, mutated generated messages."""
    seed = st.sampled_from(seeds(max_seed_bytes))
    return st.one_of(
        st.builds(mutate, seed, mutations(1, 8)),
        generated(),
        st.builds(mutate, generated(), mutations(1, 5)),
        seed,
    )


# --- the properties ---------------------------------------------------------------------------

# Separators a writer might put between the digits of a number (after NFKC): anything that is
# neither a letter, a digit nor a line break, up to three in a row.
_DIGIT_RUN = re.compile(r"\d(?:[^\w\n\r]{0,3}\d|_{1,3}\d)*")


def _own_birth_date_ok(d: str) -> bool:
    """A CPR number's date part, by the published century rule (written here, not stdnum's)."""
    dd, mm, yy, s7 = int(d[:2]), int(d[2:4]), int(d[4:6]), int(d[6])
    if s7 <= 3:
        century = 1900
    elif s7 in (4, 9):
        century = 2000 if yy <= 36 else 1900
    else:
        century = 2000 if yy <= 57 else 1800
    try:
        dt.date(century + yy, mm, dd)
    except ValueError:
        return False
    return True


def cpr_windows(text: str) -> set[str]:
    """Every 10-digit window of every digit run (separators removed) that is a valid-date CPR."""
    text = unicodedata.normalize("NFKC", text)
    out = set()
    for m in _DIGIT_RUN.finditer(text):
        digits = re.sub(r"\D", "", m.group(0))
        for i in range(len(digits) - 9):
            w = digits[i:i + 10]
            if _own_birth_date_ok(w):
                out.add(w)
    return out


def input_cprs(raw: bytes, parsed) -> set[str]:  # noqa: ANN001
    texts = [raw.decode("latin-1"), raw.decode("utf-8", "replace")]
    if parsed is not None:
        texts += [parsed.subject or "", parsed.text or ""]
    out: set[str] = set()
    for t in texts:
        out |= cpr_windows(t)
    return out


def cpr_leaks(text: str, known: set[str]) -> list[str]:
    """CPR numbers in outgoing `text`: what the masker's own detectors still find in it, and
    (independently) valid-date 10-digit runs that are in the input."""
    out = []
    norm = normalize(text)
    for m in cprmod._SHAPED.finditer(norm):
        out.append(f"CPR-shaped {m.group(0)!r}")
    if cprmod.mask_strict(text) != norm:
        out.append("mask_strict would still change it")
    for w in cpr_windows(text) & known:
        out.append(f"input CPR {w[:6]}-…")
    return out


def _norm_addr(a: str) -> str:
    local, _, domain = a.strip().rpartition("@")
    domain = unicodedata.normalize("NFKC", domain).strip().rstrip(".")
    try:
        domain = domain.encode("idna").decode("ascii")
    except (UnicodeError, ValueError):
        pass
    return f"{local.lower()}@{domain.lower()}"


def header_addresses(raw: bytes) -> set[str]:
    """From, Reply-To (and Sender) addresses of the top-level header block, read with the
    stdlib's lenient header parser (the bytes read as UTF-8 and as latin-1), raw and RFC 2047-decoded."""
    values: list[str] = []
    for text in (raw.decode("utf-8", "surrogateescape"), raw.decode("latin-1")):
        try:
            msg = HeaderParser(policy=email_policy.compat32).parsestr(text, headersonly=True)
        except Exception:  # noqa: BLE001
            continue
        for name, v in msg.raw_items():  # raw strings: get_all() may wrap odd bytes in a Header
            if name.lower() in ("from", "reply-to", "sender"):  # whose str() then raises
                v = v.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                values.append(v)
                try:
                    values.append(str(make_header(decode_header(v))))
                except Exception:  # noqa: BLE001
                    pass
    out = set()
    for v in values:
        for _n, a in email.utils.getaddresses([v]):
            if "@" in a:
                out.add(_norm_addr(a))
    return out


def address_problems(to: str, raw: bytes) -> list[str]:
    out = []
    if not isinstance(to, str) or re.search(r"[\s,;<>\"()]", to) or to.count("@") != 1:
        return [f"reply to a malformed address {to!r}"]
    domain = to.rpartition("@")[2].lower()
    try:  # an internationalised subdomain (åikkermail.hjoerring.dk) is judged in its ASCII form
        ascii_domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        ascii_domain = ""
    munis = [m.domain for m in settings().triage.municipalities]
    if not any(ascii_domain == d or ascii_domain.endswith("." + d) for d in munis):
        out.append(f"reply to a domain that is not allowed: {domain!r}")
    if to.strip().lower() in settings().own_addresses:
        out.append("reply to our own address")
    if _norm_addr(to) not in header_addresses(raw):
        out.append(f"reply to {to!r}, not an address of the message's From/Reply-To")
    return out


def _summary(result) -> tuple:  # noqa: ANN001
    return (result.decision, result.reason, list(result.missing),
            result.reply.as_dict() if result.reply is not None else None)


@dataclass
class Outcome:
    decision: str
    reason: str | None
    replied: bool
    failures: list[str]


def check(raw: bytes) -> Outcome:
    """Triage `raw` twice in process; the properties that fail (empty: all hold)."""
    run = decide()
    failures: list[str] = []
    try:
        result, parsed = run(raw, today=TODAY)
    except BaseException as e:  # noqa: BLE001 - any exception is a failure
        if isinstance(e, KeyboardInterrupt):
            raise
        return Outcome("exception", type(e).__name__, False, [f"exception escaped: {type(e).__name__}: {e}"])
    if result.decision not in DECISIONS:
        failures.append(f"unknown decision {result.decision!r}")
    if result.manual_reason == "internal_error":
        failures.append(f"internal_error caught inside the triage: {result.error}")
    reply = result.reply
    if reply is not None:
        known = input_cprs(raw, parsed)
        for what, text in (("subject", reply.subject), ("body", reply.body)):
            failures += [f"reply {what}: {leak}" for leak in cpr_leaks(text, known)]
        failures += address_problems(reply.to, raw)
        if result.decision not in ("accepted", "incomplete", "redirect"):
            failures.append(f"a reply for decision {result.decision}")
    try:
        again, _ = run(raw, today=TODAY)
    except BaseException as e:  # noqa: BLE001
        if isinstance(e, KeyboardInterrupt):
            raise
        failures.append(f"exception escaped on the second run: {type(e).__name__}")
    else:
        if _summary(again) != _summary(result):
            failures.append("not deterministic: a second run gave another decision, reason, missing list or reply")
    return Outcome(result.decision, result.reason, reply is not None, failures)
