"""Read the referral's fields from the segments that count: name, CPR, phone, examinations,
problem to assess, each with its evidence (where it came from, which label or rule).

Pure functions over text units `(source, text)` (the subject, the sender's new text,
forwarded messages, attached forms as text) and the compiled `Rules`. Besides the values it
collects *signals*: signs that an item is there but could not be read (a label whose value
points to an attachment, a name label with an unreadable value). The triage turns a missing
item with a signal into `manual`/`uncertain`, never into a "missing items" reply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import phonenumbers

from intake.core import cpr as cprmod
from intake.core import examinations as exams
from intake.core.pairs import Pair, continuation, label_key, pairs
from intake.core.rules import Rules

def _name_word(w: str, loose: bool = False) -> bool:
    """A word of a person's name: letters of any script (Petrović, Ågesen), with "-", "'",
    "’" or a final "."; capitalised unless `loose` (under a name label)."""
    if not w or not w[0].isalpha() or not (loose or w[0].isupper()):
        return False
    return all(ch.isalpha() or ch in "'’-." for ch in w) and not re.search(r"[-'’.]{2}", w)
_PARTICLES = frozenset({"von", "van", "de", "der", "den", "la", "le", "af", "bin", "ibn", "el", "al", "da", "di",
                        "dela", "del", "du", "dos", "das", "ten", "ter", "zu", "y"})
_LETTERS = re.compile(r"[^\W\d_]")
_CPR_SHAPE = r"\d{6}\s?-?\s?(?:\d{4}|[xX*]{4})"
# A capitalised name right before a CPR number: "Anders Holm Kristensen, 110381-2245",
# "Birgitte Dam Sørensen (cpr 170868-2040)". Bounded repetition: linear.
_NAME_BEFORE_CPR = re.compile(
    r"(?P<name>[A-ZÆØÅ][\w'’\-]{1,30}(?:[ \t]+(?:[A-ZÆØÅ][\w'’\-]{0,30}|von|van|de|af|la|le|el|al|da|dela|del|du|dos|das|ten|ter|zu)){1,5})"
    r"[ \t]*[,(/–\-]?[ \t]*(?:(?:cpr|cpr-?nr|cpr\.?\s*nr|personnummer|pers\.?\s*nr|f\.|født)\.?[ \t]*:?[ \t]*)?" + _CPR_SHAPE)
# "Jeg vil gerne henvise Bjarne Holst Christiansen til …"
_REFER_NAME = re.compile(
    r"\bhenvis\w*\s+(?:hermed\s+)?(?:vores\s+|en\s+)?(?:borger(?:en)?\s*,?\s*)?"
    r"(?P<name>[A-ZÆØÅ][\w'’\-]{1,30}(?:[ \t]+(?:[A-ZÆØÅ][\w'’\-]{0,30}|von|van|de|af|la|le|el|al|da|dela|del|du|dos|das|ten|ter|zu)){1,5})")
# "Henvisning til psykologisk undersøgelse af Kristoffer Lau Mikkelsen"
_EXAM_OF_NAME = re.compile(
    r"(?:henvisning|undersøgelse|erklæring|samtaler|vurdering|udredning)\w*\s+(?:af|for|vedr\.?|på)\s+(?:borger(?:en)?\s+)?"
    r"(?P<name>[A-ZÆØÅ][\w'’\-]{1,30}(?:[ \t]+(?:[A-ZÆØÅ][\w'’\-]{0,30}|von|van|de|af|la|le|el|al|da|dela|del|du|dos|das|ten|ter|zu)){1,5})")
# A name in any case right after "henvise" and right before the CPR number: "jeg vil gerne
# henvise kasper nørgaard lund cprnr 140492-1833" (run-on, lower case).
_REFER_NAME_CPR = re.compile(
    r"\bhenvis\w*\s+(?:hermed\s+)?(?P<name>[^\W\d_][\w'’\-]{1,30}(?:[ \t]+[^\W\d_][\w'’\-]{0,30}){1,4})"
    r"[ \t,]*\(?[ \t]*(?:(?:cpr\w*|cpr-?nr|personnummer|pers\.?\s*nr)\.?[ \t]*:?[ \t]*)?" + _CPR_SHAPE)
# A name alone on a line, right above the line with the CPR number or its label.
_NAME_ABOVE_CPR = re.compile(r"^[ \t]*(?P<name>[^\n\d:]{4,80})\n[ \t]*(?:[^\n]{0,40}(?:cpr|personnummer|personnr)|\d{6}-?\d{4})", re.I | re.M)
_VEDR = re.compile(r"^\W{0,3}(?:vedr(?:\.|ørende)?|ang(?:\.|ående)?)\s*(?:borger(?:en)?\s*)?[:\-]?\s*(?P<value>[^\n]{3,120})$",
                   re.I | re.M)
_SUBJECT_TAIL = re.compile(r"(?:\s[-–:|/]\s|:\s)(?P<value>[^-–:|/]{3,80})$")
# Names in free text, in the order tried: (pattern, group, evidence rule).
_FREE_TEXT_NAMES = (
    (_NAME_BEFORE_CPR, "name", "name next to CPR number"),
    (_REFER_NAME, "name", "named in the referring sentence"),
    (_NAME_ABOVE_CPR, "name", "name above the CPR line"),
    (_EXAM_OF_NAME, "name", "named after the examination"),
    (_VEDR, "value", "Vedr./Ang. line"),
)
# The same in any letter case, where the sentence itself says it is the person referred.
_LOOSE_NAMES = ((_REFER_NAME_CPR, "name", "named, in any case, between \"henvise\" and the CPR number"),)
_INTRO_LINE = re.compile(r"(?:spørgsmål|ønske\w*|belys\w*|afklar\w*|besvar\w*|vurder\w*|undersøg\w*|vide)\b[^\n]{0,80}:\s*$", re.I)
_LIST_ITEM = re.compile(r"^\s*(?:\(?\d{1,2}[.)]|[a-h][.)]|[-*•·◦▪►–])\s+\S")
_QUESTION = re.compile(r"[^\n.?!]{15,300}\?")


# The printed page of a form with check boxes: read for every field but the examinations
# (its list of options names all four; the ticked boxes say which one).
FORM_PAGE = "form-page:"


@dataclass
class Fields:
    name: str | None = None
    cpr: cprmod.CprFindings = field(default_factory=cprmod.CprFindings)
    phone: str | None = None
    examinations: list[str] = field(default_factory=list)
    exam_history: list[str] = field(default_factory=list)
    problem: str | None = None
    evidence: dict[str, list[dict]] = field(default_factory=dict)
    signals: list[dict] = field(default_factory=list)  # an item there but unread: {field, source, rule}

    def note(self, key: str, source: str, rule: str) -> None:
        source = source.replace(FORM_PAGE, "attachment:", 1)
        self.evidence.setdefault(key, []).append({"source": source, "rule": cprmod.mask_text(rule)[:120]})


def norm_line(line: str) -> str:
    """A line compared for sameness: quote marks, case and white space do not matter."""
    return re.sub(r"\s+", " ", line.lstrip("> \t")).strip().lower()


def clean_name(value: str, rules: Rules, labelled: bool = False) -> str | None:
    """A person's name as written, or None when the value does not look like one. Under a
    name label, lower-case words are accepted ("karen lund"); in free text they are not."""
    turned = re.fullmatch(r"\s*([^\W\d_][\w'’-]*)\s*,\s*((?:[^\W\d_][\w'’.-]*\s*){1,3})\s*", value) if labelled else None
    if turned:  # "Kristensen, Lone Birgit" (surname first, as case systems write it)
        value = f"{turned.group(2).strip()} {turned.group(1)}"
    value = re.split(r"[,;(\t|/]|\s-\s|\s–\s|\d|\bcpr\b|\bf\.\s", value, maxsplit=1, flags=re.I)[0]
    value = re.sub(r"\s+", " ", value).strip(" .:-–")
    words = value.split(" ")
    if not 2 <= len(words) <= 6:
        return None
    for i, w in enumerate(words):
        if w.lower().strip(".") in rules.not_name_words:
            return None
        if w.lower() in _PARTICLES and 0 < i < len(words) - 1:
            continue
        if not _name_word(w, loose=labelled):
            return None
    if labelled and value.islower() is False and not any(w[0].isupper() for w in words):
        return None
    return value


def label_is(rx: re.Pattern[str], label: str) -> bool:
    """The label, or one of its "/"-separated forms ("Name / Navn"), is one of `rx`'s."""
    key = label_key(label)
    return bool(rx.fullmatch(key)) or ("/" in key and any(rx.fullmatch(k.strip()) for k in key.split("/")))


def _source(unit_source: str, pair: Pair | None, html: bool) -> str:
    if pair is not None and html and unit_source in ("body", "forwarded") and pair.how in ("table_row", "table_below"):
        return "html_table"
    return unit_source


def read_fields(units: list[tuple[str, str]], subject: str, rules: Rules, today, html: bool = False) -> Fields:  # noqa: ANN001
    f = Fields()
    unit_pairs = [(src, text, pairs(text)) for src, text in units]
    _read_name(f, unit_pairs, subject, rules, html)
    _read_cpr(f, units, unit_pairs, subject, rules, today, html)
    _read_phone(f, unit_pairs, rules)
    found = exams.find([("subject", subject)] + [u for u in units if not u[0].startswith(FORM_PAGE)], rules)
    f.examinations, f.exam_history = found.requested, found.history
    for ev in found.evidence:
        f.evidence.setdefault("examinations", []).append(ev)
    _read_problem(f, unit_pairs, rules, html)
    return f


def _read_name(f: Fields, unit_pairs, subject: str, rules: Rules, html: bool) -> None:  # noqa: ANN001
    unreadable: list[tuple[str, str]] = []
    for src, _text, ps in unit_pairs:
        for p in ps:
            if not label_is(rules.name_key, p.label):
                continue
            if _take_name(f, rules, _source(src, p, html), f"label: {p.label}", [p.value], labelled=True):
                return
            if rules.pointer_value.search(p.value):
                f.signals.append({"field": "name", "source": src, "rule": f"label points elsewhere: {p.label}"})
            elif p.value.strip() and _LETTERS.search(p.value):
                unreadable.append((src, p.label))
    for src, text, _ps in unit_pairs:
        for rx, group, rule in _FREE_TEXT_NAMES:
            for m in rx.finditer(text):
                words = m.group(group).split()
                # "Vedr. Anders Holm …", "henviser hermed Birgitte Dam …": drop leading words
                if _take_name(f, rules, src, rule, (" ".join(words[k:]) for k in range(max(1, len(words) - 1)))):
                    return
    for src, text, _ps in unit_pairs:
        for rx, group, rule in _LOOSE_NAMES:
            for m in rx.finditer(text):
                if _take_name(f, rules, src, rule, [m.group(group)], labelled=True):
                    return
    for rx, rule in ((rules.subject_name, "subject prefix"), (_SUBJECT_TAIL, "subject ending in a name")):
        m = rx.search(subject.strip())
        if m and _take_name(f, rules, "subject", rule, [m.group("value")]):
            return
    for src, label in unreadable:
        f.signals.append({"field": "name", "source": src, "rule": f"label with a value that is not read as a name: {label}"})


def _take_name(f: Fields, rules: Rules, source: str, rule: str, candidates, labelled: bool = False) -> bool:  # noqa: ANN001
    """The first candidate that reads as a name becomes the client's name, with its evidence."""
    for value in candidates:
        name = clean_name(value, rules, labelled=labelled)
        if name:
            f.name = name
            f.note("name", source, rule)
            return True
    return False


def _read_cpr(f: Fields, units, unit_pairs, subject: str, rules: Rules, today, html: bool) -> None:  # noqa: ANN001
    whole = subject + "\n\n" + "\n\n".join(t for _s, t in units)
    f.cpr = cprmod.find(whole, rules, today)
    if f.cpr.valid:
        first = f.cpr.valid[0]
        for src, text in [("subject", subject)] + list(units):
            found = cprmod.find(text, rules, today)
            if first in found.valid:
                holding = [p for _s, t, ps in unit_pairs if t is text for p in ps if first in re.sub(r"\D", "", p.value)]
                label = next((p.label for p in holding if label_is(rules.cpr_key, p.label)), None)
                f.note("cpr", _source(src, holding[0] if holding else None, html),
                       f"label: {label}" if label else "CPR number (valid date)")
                break
        return
    for src, _text, ps in unit_pairs:
        for p in ps:
            if not label_is(rules.cpr_key, p.label):
                continue
            value = p.value.strip()
            digits = re.sub(r"\D", "", value)
            if rules.pointer_value.search(value):
                f.signals.append({"field": "cpr", "source": src, "rule": f"label points elsewhere: {p.label}"})
            elif 6 <= len(digits) and len(digits) != 10 and not re.search(r"[xX*]{2}", value):
                f.signals.append({"field": "cpr", "source": src, "rule": f"label with a number that is not 10 digits: {p.label}"})
            elif value and not digits and _LETTERS.search(value) and not re.search(r"eftersend|følger|mangler|ukendt", value, re.I):
                f.signals.append({"field": "cpr", "source": src, "rule": f"label with a value that is not a number: {p.label}"})


def _read_phone(f: Fields, unit_pairs, rules: Rules) -> None:  # noqa: ANN001
    for _src, _text, ps in unit_pairs:
        for p in ps:
            if not label_is(rules.phone_key, p.label):
                continue
            for match in phonenumbers.PhoneNumberMatcher(p.value[:80], "DK"):
                if phonenumbers.is_valid_number(match.number):
                    f.phone = phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
                    return


def _enough(value: str, rules: Rules) -> bool:
    return len(_LETTERS.findall(value)) >= rules.problem_min_letters


def _read_problem(f: Fields, unit_pairs, rules: Rules, html: bool) -> None:  # noqa: ANN001
    for src, text, ps in unit_pairs:
        for p in ps:
            if not label_is(rules.problem_key, p.label):
                continue
            value = continuation(text, p)
            if rules.pointer_value.search(p.value):
                f.signals.append({"field": "problem", "source": src, "rule": f"label points elsewhere: {p.label}"})
                continue
            if _enough(value, rules):
                f.problem = re.sub(r"\s+", " ", value)[:2000]
                f.note("problem", _source(src, p, html), f"label: {p.label}")
                return
            if not value.strip():
                # "Spørgsmål:" with a list below it
                listed = _listed_after(text, p.line)
                if listed and _enough(listed, rules):
                    f.problem = listed
                    f.note("problem", src, f"list after label: {p.label}")
                    return
    for src, text, _ps in unit_pairs:
        lines = text.split("\n")
        for i, ln in enumerate(lines):
            if _INTRO_LINE.search(ln):
                listed = _listed_after(text, i)
                if listed and _enough(listed, rules):
                    f.problem = listed
                    f.note("problem", src, f"questions after: {ln.strip()[:60]}")
                    return
        m = rules.problem_phrase.search(text)
        if m:
            start = max(text.rfind(".", 0, m.start()), text.rfind("\n\n", 0, m.start())) + 1
            end = text.find(".", m.end())
            sentence = text[start: end if end != -1 else len(text)].strip()
            if _enough(sentence, rules):
                f.problem = re.sub(r"\s+", " ", sentence)[:2000]
                f.note("problem", src, f"phrase: {m.group(0)}")
                return
    for src, text, _ps in unit_pairs:
        if src == "subject":
            continue
        qs = [q.strip() for q in _QUESTION.findall(text) if _question_about_client(q)]
        if qs:
            f.problem = " ".join(qs)[:2000]
            f.note("problem", src, "question about the citizen")
            return


def _question_about_client(q: str) -> bool:
    return bool(re.search(r"\b(?:borger(?:en|ens)?|klient(?:en|ens)?|hun|han|hendes|hans|vedkommende|arbejdsevne|funktionsevne)\b", q, re.I)) \
        and not re.search(r"\b(?:kan|vil|må)\s+(?:i|du)\b|\bring\w*\b|\bkontakt\w*\b", q, re.I)


def _listed_after(text: str, line_no: int) -> str | None:
    """List items or questions on the lines after line `line_no` (an introducing line): marked
    items, questions, or short lines that continue the sentence ("hvilke begrænsninger …");
    blank lines between items are allowed (HTML paragraphs)."""
    items: list[str] = []
    blanks = 0
    for ln in text.split("\n")[line_no + 1: line_no + 30]:
        s = ln.strip()
        if not s:
            blanks += 1
            if blanks > 1 and items:
                break
            continue
        blanks = 0
        continues = s[0].islower() or (len(s.split()) <= 15 and not s.endswith("."))
        if _LIST_ITEM.match(ln) or s.endswith("?") or (continues and ":" not in s[:40]):
            items.append(s)
        elif items:
            break
        else:
            return None
    return " ".join(items) if items else None
