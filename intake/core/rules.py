"""Load the keyword data in `config/rules.toml` into compiled patterns (no matching here)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from intake.resources import default_rules_file

_FLAGS = re.IGNORECASE | re.UNICODE


_FOLD = {"æ": "(?:æ|ae)", "ø": "(?:ø|oe)", "å": "(?:å|aa)", "Æ": "(?:Æ|AE)", "Ø": "(?:Ø|OE)", "Å": "(?:Å|AA)"}


def fold_danish(pattern: str) -> str:
    """Let a pattern written with æ, ø, å also match text typed without them ("undersoegelse",
    "oensket", "Vedhaeftet"), outside character classes."""
    out, depth, escaped = [], 0, False
    for ch in pattern:
        if escaped:
            out.append(ch)
            escaped = False
            continue
        if ch == "\\":
            escaped = True
        elif ch == "[":
            depth += 1
        elif ch == "]" and depth:
            depth -= 1
        out.append(_FOLD.get(ch, ch) if depth == 0 else ch)
    return "".join(out)


def _alt(patterns: list[str]) -> str:
    return "(?:" + "|".join(f"(?:{fold_danish(p)})" for p in patterns) + ")"


@dataclass(frozen=True)
class Examination:
    code: str
    label: str
    pattern: re.Pattern[str]


@dataclass(frozen=True)
class RedirectRule:
    reason: str
    pattern: re.Pattern[str]


@dataclass(frozen=True)
class ExamConcepts:
    """`[examination_concepts]`: domain stems, product and talk words (intake.core.examinations)."""
    domains: tuple[tuple[str, re.Pattern[str]], ...]
    product: re.Pattern[str]  # matches a whole word
    talk: re.Pattern[str]
    talk_support: re.Pattern[str]
    talk_domains: frozenset[str]
    phrases: tuple[tuple[str, re.Pattern[str]], ...]
    window: int
    request_cue: re.Pattern[str]
    history_cue: re.Pattern[str]
    unticked: re.Pattern[str]
    ticked: re.Pattern[str]


@dataclass(frozen=True)
class Rules:
    examinations: tuple[Examination, ...]
    exam_concepts: ExamConcepts
    name_key: re.Pattern[str]  # a whole label (intake.core.pairs.label_key) that introduces the name
    subject_name: re.Pattern[str]
    not_name_words: frozenset[str]
    problem_key: re.Pattern[str]
    problem_phrase: re.Pattern[str]
    problem_min_letters: int
    phone_key: re.Pattern[str]
    cpr_key: re.Pattern[str]
    pointer: re.Pattern[str]
    pointer_value: re.Pattern[str]
    form_name: re.Pattern[str]
    danish_words: frozenset[str]
    not_referral_strong: re.Pattern[str]
    not_referral_weak: re.Pattern[str]
    referral_intent: re.Pattern[str]
    existing_referral: re.Pattern[str]
    new_referral: re.Pattern[str]
    signature_start: re.Pattern[str]
    field_line: re.Pattern[str]  # a line that starts with a field label: never a signature line
    cpr_label: re.Pattern[str]
    not_cpr_label: re.Pattern[str]
    redirect_rules: tuple[RedirectRule, ...]
    redirect_window_words: int
    redirect_negation_cue: re.Pattern[str]
    klinisk_funktion_examinations: frozenset[str]
    redirect_past_cue: re.Pattern[str]
    redirect_ongoing_cue: re.Pattern[str]
    redirect_after_cue: re.Pattern[str]

    @property
    def exam_order(self) -> tuple[str, ...]:
        return tuple(e.code for e in self.examinations)

    def examination_label(self, code: str) -> str:
        for e in self.examinations:
            if e.code == code:
                return e.label
        return code


def _key(labels: list[str]) -> re.Pattern[str]:
    """A whole label, as `intake.core.pairs.label_key` writes it."""
    return re.compile(_alt(labels), _FLAGS)


def _words(patterns: list[str]) -> re.Pattern[str]:
    return re.compile(_alt(patterns) + "$", _FLAGS)


def _concepts(c: dict) -> ExamConcepts:
    return ExamConcepts(
        domains=tuple((code, re.compile(_alt(p), _FLAGS)) for code, p in c["domains"].items()),
        product=_words(c["products"]),
        talk=_words(c["talk"]),
        talk_support=re.compile(_alt(c["talk_support"]), _FLAGS),
        talk_domains=frozenset(c.get("talk_domains", [])),
        phrases=tuple((code, re.compile(_alt(p), _FLAGS)) for code, p in c.get("phrases", {}).items()),
        window=int(c.get("window", 5)),
        request_cue=re.compile(_alt(c["request_cues"]), _FLAGS),
        history_cue=re.compile(_alt(c["history_cues"]), _FLAGS),
        unticked=re.compile(_alt(c["unticked"]), _FLAGS),
        ticked=re.compile(_alt(c["ticked"]), _FLAGS),
    )


def compile_rules(data: dict) -> Rules:
    exams = tuple(
        Examination(code, spec["label"], re.compile(_alt(spec["patterns"]), _FLAGS))
        for code, spec in data["examinations"].items()
    )
    name = data["name"]
    subject_name = re.compile(
        r"^\s*" + _alt(name["subject_prefixes"]) + r"\s*[:\-–]\s*(?P<value>[^,;:()\[\]]+)", _FLAGS
    )
    prob = data["problem"]
    red = data["redirect"]
    words = int(red.get("window_words", 6))
    negation = re.compile(r"\b" + _alt(red["negation_cues"] + red.get("settled_cues", [])) + r"\b", _FLAGS)
    past = re.compile(r"\b" + _alt(red["past_cues"]) + r"\b", _FLAGS)
    ongoing = re.compile(r"\b" + _alt(red["ongoing_cues"]) + r"\b", _FLAGS)
    after = re.compile(r"^\W{0,3}(?:\w+\W+){0,3}?" + _alt(red["after_cues"]) + r"\b", _FLAGS)
    rules = tuple(
        RedirectRule(r["reason"], re.compile(_alt(r["patterns"]), _FLAGS)) for r in red["rules"]
    )
    unc, nr = data["uncertain"], data["not_referral"]
    return Rules(
        examinations=exams,
        exam_concepts=_concepts(data["examination_concepts"]),
        name_key=_key(name["labels"]),
        subject_name=subject_name,
        not_name_words=frozenset(w.lower() for w in name["not_name_words"]),
        problem_key=_key(prob["labels"]),
        problem_phrase=re.compile(_alt(prob["phrases"]), _FLAGS),
        problem_min_letters=int(prob.get("min_letters", 12)),
        phone_key=_key(data["phone"]["labels"]),
        cpr_key=re.compile(_alt(data["cpr"]["labels"]) + r"(?:[\s.\-]*(?:nr|nummer)\.?)?(?:\s.{0,30})?", _FLAGS),
        pointer=re.compile(_alt(unc["pointers"]), _FLAGS),
        pointer_value=re.compile(_alt(unc["pointer_values"]), _FLAGS),
        form_name=re.compile(_alt(unc["form_names"]), _FLAGS),
        danish_words=frozenset(unc["danish_words"]),
        not_referral_strong=re.compile(_alt(nr["strong"]), _FLAGS | re.M),
        not_referral_weak=re.compile(_alt(nr["weak"]), _FLAGS),
        referral_intent=re.compile(_alt(nr["intent"]), _FLAGS),
        existing_referral=re.compile(_alt(nr.get("existing", ["(?!)"])), _FLAGS),
        new_referral=re.compile(_alt(nr.get("new_referral", ["(?!)"])), _FLAGS),
        signature_start=re.compile(_alt(data["signature"]["starts"]), _FLAGS | re.M),
        field_line=re.compile(r"^\W{0,3}" + _alt(data["signature"].get("field_lines", ["(?!)"])) + r"\s*:", _FLAGS),
        cpr_label=re.compile(r"\b" + _alt(data["cpr"]["labels"]), _FLAGS),
        not_cpr_label=re.compile(r"\b" + _alt(data["cpr"]["not_cpr_labels"]) + r"\b", _FLAGS),
        redirect_rules=rules,
        redirect_window_words=words,
        redirect_negation_cue=negation,
        klinisk_funktion_examinations=frozenset(red.get("klinisk_funktion_examinations", [])),
        redirect_past_cue=past,
        redirect_ongoing_cue=ongoing,
        redirect_after_cue=after,
    )


@lru_cache(maxsize=8)
def _load_cached(path: str, mtime: float) -> Rules:
    with open(path, "rb") as f:
        return compile_rules(tomllib.load(f))


def load_rules(path: str | Path | None = None) -> Rules:
    p = Path(path) if path else default_rules_file()
    return _load_cached(str(p), p.stat().st_mtime)
