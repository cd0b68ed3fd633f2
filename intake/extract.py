"""Read the referral's fields from its text: name, phone, examinations, problem to assess.

Pure functions over text and the compiled `Rules`; CPR numbers are `intake.cpr`'s job.
"""

from __future__ import annotations

import re

import phonenumbers

from intake.rules import Rules

_NAME_WORD = re.compile(r"^[A-ZÆØÅÄÖÜÉÈÁÍÓÚÑ][a-zæøåäöüéèáíóúñçA-ZÆØÅÄÖÜÉ'’.\-]*$")
_PARTICLES = frozenset({"von", "van", "de", "der", "den", "la", "le", "af", "bin", "ibn", "el", "al", "da", "di"})
_LETTERS = re.compile(r"[^\W\d_]")
_QUOTE_HEADER = re.compile(
    r"^(?:-{2,}\s*(?:original message|oprindelig meddelelse|original meddelelse)\s*-{2,}"
    r"|(?:fra|from):\s.*\n(?:.*\n)?(?:sendt|sent|dato|date):\s"
    r"|(?:den|on)\s.{4,80}\s(?:skrev|wrote)\s?.{0,80}:\s*$)",
    re.IGNORECASE | re.MULTILINE,
)
_FORWARD_SUBJECT = re.compile(r"^\s*(?:fw|fwd|vs|wg|videresend\w*)\s*:", re.IGNORECASE)


def norm_line(line: str) -> str:
    """A line compared for sameness: quote marks, case and white space do not matter."""
    return re.sub(r"\s+", " ", line.lstrip("> \t")).strip().lower()


def new_text(text: str, subject: str = "") -> str:
    """The text the sender wrote now: quoted lines and the quoted history of a reply removed.

    A forwarded message keeps its history: that is where a forwarded referral stands.
    """
    lines = [ln for ln in text.split("\n") if not ln.lstrip().startswith(">")]
    out = "\n".join(lines)
    if not _FORWARD_SUBJECT.match(subject):
        m = _QUOTE_HEADER.search(out)
        if m:
            out = out[: m.start()]
    return out


def split_signature(text: str, rules: Rules) -> tuple[str, str]:
    """(body, signature): the signature starts at "Med venlig hilsen", "Mvh", "-- " …"""
    m = rules.signature_start.search(text)
    if not m:
        return text, ""
    return text[: m.start()], text[m.start():]


def clean_name(value: str, rules: Rules) -> str | None:
    """A person's name as written, or None when the value does not look like one."""
    value = re.split(r"[,;(\t|/]|\s-\s|\s–\s|\d", value, maxsplit=1)[0]
    value = re.sub(r"\s+", " ", value).strip(" .:-–")
    words = value.split(" ")
    if not 2 <= len(words) <= 6:
        return None
    for i, w in enumerate(words):
        if w.lower() in rules.not_name_words:
            return None
        if w.lower() in _PARTICLES and 0 < i < len(words) - 1:
            continue
        if not _NAME_WORD.match(w):
            return None
    return value


def find_name(text: str, subject: str, rules: Rules) -> str | None:
    body, _sig = split_signature(text, rules)
    for source in (body, text):
        for m in rules.name_label.finditer(source):
            name = clean_name(m.group("value"), rules)
            if name:
                return name
    m = rules.subject_name.search(subject)
    if m:
        return clean_name(m.group("value"), rules)
    return None


def find_phone(text: str, rules: Rules) -> str | None:
    """The client's phone (E.164), from a labelled line above the sender's signature."""
    body, _sig = split_signature(text, rules)
    for m in rules.phone_label.finditer(body):
        for match in phonenumbers.PhoneNumberMatcher(m.group("value")[:80], "DK"):
            if phonenumbers.is_valid_number(match.number):
                return phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
    return None


def find_examinations(text: str, rules: Rules) -> list[str]:
    return [e.code for e in rules.examinations if e.pattern.search(text)]


def _enough(value: str, rules: Rules) -> bool:
    return len(_LETTERS.findall(value)) >= rules.problem_min_letters


def find_problem(text: str, rules: Rules) -> str | None:
    """The problem the municipality wants assessed: a labelled paragraph or a telling sentence."""
    body, _sig = split_signature(text, rules)
    lines = body.split("\n")
    for m in rules.problem_label.finditer(body):
        parts = [m.group("value").strip()]
        # continuation lines, up to a blank line or the next "Label:" line
        line_no = body.count("\n", 0, m.start())
        for ln in lines[line_no + 1: line_no + 30]:
            if not ln.strip() or re.match(r"^\s*[\w .\-]{1,40}(?::|\t)", ln):
                break
            parts.append(ln.strip())
        value = " ".join(p for p in parts if p)
        if _enough(value, rules):
            return value
    m = rules.problem_phrase.search(body)
    if m:
        start = max(body.rfind(".", 0, m.start()), body.rfind("\n\n", 0, m.start())) + 1
        end = body.find(".", m.end())
        sentence = body[start: end if end != -1 else len(body)].strip()
        if _enough(sentence, rules):
            return re.sub(r"\s+", " ", sentence)
    return None
